/**
 * Which instances are the autoscaler's replicas, kept in its own table so a restarted server knows them again
 * (operator-made instances are never drained). Ids are `r-<n>`, the lowest n no instance of the service has, so
 * an operator's own `r-1` is skipped, never taken over.
 */
import type { PluginContext, PluginStore } from '../../core/plugin-context.ts';

export const REPLICA_PREFIX = 'r-';

const MIGRATIONS = [
  {
    version: 1,
    sql: `CREATE TABLE autoscale_replicas (
      service TEXT NOT NULL,
      id TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      PRIMARY KEY (service, id)
    )`,
  },
];

export class ReplicaTable {
  constructor(private readonly store: PluginStore) {
    store.migrate(MIGRATIONS);
  }

  add(service: string, id: string): void {
    this.store.db.prepare('INSERT OR IGNORE INTO autoscale_replicas (service, id, created_at) VALUES (?, ?, ?)').run(service, id, Date.now());
  }

  delete(service: string, id: string): void {
    this.store.db.prepare('DELETE FROM autoscale_replicas WHERE service = ? AND id = ?').run(service, id);
  }

  all(): Array<{ service: string; id: string }> {
    return this.store.db.prepare('SELECT service, id FROM autoscale_replicas ORDER BY service, created_at').all() as Array<{ service: string; id: string }>;
  }
}

/** The next free replica id of the service: `r-<n>` with n from `from` on, skipping ids taken by any instance. */
export function nextReplicaId(ctx: PluginContext, service: string, taken: ReadonlySet<string>, from: number): { id: string; n: number } {
  for (let n = Math.max(1, from); ; n++) {
    const id = `${REPLICA_PREFIX}${n}`;
    if (!taken.has(id) && !ctx.instances.get(service, id)) return { id, n };
  }
}
