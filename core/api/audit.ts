import type { Store } from '../store.ts';
import type { Identity } from '../types.ts';

export interface AuditEntry {
  id: number;
  at: number;
  /** Token name (or 'anonymous'). */
  actor: string;
  /** The tenant of a tenant token, or null for admins. */
  tenant: string | null;
  action: string;
  /** What was acted on, e.g. `notes:alice` or `notes`. */
  target: string | null;
  /** The instance id the action concerned, for tenant-scoped reading. */
  instanceId: string | null;
  status: number;
  detail: string | null;
}

export type AuditRecord = Omit<AuditEntry, 'id' | 'at'>;

export const AUDIT_MIGRATIONS = [
  {
    version: 1,
    sql: `
      CREATE TABLE audit (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          INTEGER NOT NULL,
        actor       TEXT NOT NULL,
        tenant      TEXT,
        action      TEXT NOT NULL,
        target      TEXT,
        instance_id TEXT,
        status      INTEGER NOT NULL,
        detail      TEXT
      );
      CREATE INDEX audit_instance ON audit (instance_id, id);
    `,
  },
];

/** Every mutating management call: who, what, when and how it ended. */
export class AuditLog {
  private readonly insert;
  constructor(private readonly store: Store) {
    store.migrateOwner('audit', AUDIT_MIGRATIONS);
    this.insert = store.db.prepare(
      `INSERT INTO audit (at, actor, tenant, action, target, instance_id, status, detail)
       VALUES (@at, @actor, @tenant, @action, @target, @instanceId, @status, @detail)`,
    );
  }

  record(entry: AuditRecord): void {
    this.insert.run({ at: Date.now(), ...entry });
  }

  /** Newest first; `before` is the id to page from. A tenant sees only what concerned its own instances. */
  list(identity: Identity, options: { limit: number; before?: number }): AuditEntry[] {
    const where: string[] = [];
    const args: Record<string, unknown> = { limit: options.limit };
    if (options.before !== undefined) {
      where.push('id < @before');
      args.before = options.before;
    }
    if (identity.kind === 'tenant') {
      where.push('instance_id = @tenant');
      args.tenant = identity.tenant;
    }
    const sql = `SELECT id, at, actor, tenant, action, target, instance_id AS instanceId, status, detail FROM audit
      ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT @limit`;
    return this.store.db.prepare(sql).all(args) as AuditEntry[];
  }
}
