import { readFileSync } from 'node:fs';
import { ErrorCodes, TenementError } from '../errors.ts';
import type { Store } from '../store.ts';

export interface UidRange {
  from: number;
  to: number;
}

export interface UidAssignment {
  service: string;
  id: string;
  uid: number;
}

/**
 * Append-only schema steps of the `tenant-uids` owner. `uid` is the primary key, so two instances can never be
 * given the same uid, whatever happens between two allocations.
 */
const STEPS = [
  {
    version: 1,
    sql: `
      CREATE TABLE tenant_uids (
        uid         INTEGER PRIMARY KEY,
        service     TEXT NOT NULL,
        id          TEXT NOT NULL,
        assigned_at INTEGER NOT NULL,
        UNIQUE (service, id)
      );
    `,
  },
];

/** The third field of every line of a passwd or group file: the ids the host's own accounts use. */
function idsIn(file: string, into: Set<number>): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return;
  }
  for (const line of text.split('\n')) {
    const field = line.split(':')[2];
    if (field !== undefined && /^\d+$/.test(field)) into.add(Number(field));
  }
}

/** Uids of /etc/passwd and gids of /etc/group: a tenant's uid doubles as its gid, so both must be free. */
export function hostAccountIds(passwd = '/etc/passwd', group = '/etc/group'): Set<number> {
  const ids = new Set<number>();
  idsIn(passwd, ids);
  idsIn(group, ids);
  return ids;
}

export interface UidAllocatorOptions {
  range: UidRange;
  /** Ids not to hand out besides the host's accounts: services' explicit numeric `user`s. */
  reserved?: ReadonlySet<number>;
  /** Ids of the host's accounts, read at each allocation (an account may be added while Tenement runs). */
  hostIds?: () => ReadonlySet<number>;
}

/**
 * One uid per instance, like systemd's DynamicUser, kept in the state database so an instance's DATA_DIR stays
 * its own across restarts of the instance and of Tenement. The lowest free uid of `settings.tenantUids` is
 * given; never one that an account of the host (or a service's explicit `user`) has.
 */
export class UidAllocator {
  private readonly range: UidRange;
  private readonly reserved: ReadonlySet<number>;
  private readonly hostIds: () => ReadonlySet<number>;
  private readonly statements;

  constructor(
    private readonly store: Store,
    options: UidAllocatorOptions,
  ) {
    this.range = options.range;
    this.reserved = options.reserved ?? new Set();
    this.hostIds = options.hostIds ?? (() => hostAccountIds());
    store.migrateOwner('tenant-uids', STEPS);
    const db = store.db;
    this.statements = {
      get: db.prepare('SELECT uid FROM tenant_uids WHERE service = ? AND id = ?'),
      taken: db.prepare('SELECT 1 FROM tenant_uids WHERE uid = ?').pluck(),
      // The first uid after `uid` not held by an instance: the end of the run of held uids that starts at `uid`.
      nextFree: db
        .prepare(
          'SELECT uid + 1 FROM (SELECT uid, LEAD(uid) OVER (ORDER BY uid) AS next FROM tenant_uids WHERE uid >= ?) WHERE next IS NULL OR next > uid + 1 LIMIT 1',
        )
        .pluck(),
      insert: db.prepare('INSERT INTO tenant_uids (uid, service, id, assigned_at) VALUES (?, ?, ?, ?)'),
      remove: db.prepare('DELETE FROM tenant_uids WHERE service = ? AND id = ?'),
      list: db.prepare('SELECT service, id, uid FROM tenant_uids ORDER BY uid'),
    };
  }

  /** The instance's uid: the one it was given before while that is still valid, else the lowest free one. */
  uidFor(service: string, id: string): number {
    const stored = (this.statements.get.get(service, id) as { uid: number } | undefined)?.uid;
    const hostIds = this.hostIds();
    const usable = (uid: number): boolean => uid >= this.range.from && uid <= this.range.to && !hostIds.has(uid) && !this.reserved.has(uid);
    if (stored !== undefined && usable(stored)) return stored;
    // The range was changed, or an account took the uid since: the instance moves (prepareDataDir re-chowns).
    return this.store.batch(() => {
      if (stored !== undefined) this.statements.remove.run(service, id);
      // Each step skips a whole run of uids held by instances (one index lookup) or one host account's uid:
      // at most (runs of held uids + host accounts in the range + 1) steps, whatever the number of instances.
      let uid = this.range.from;
      while (uid <= this.range.to) {
        if (this.statements.taken.get(uid) !== undefined) {
          uid = this.statements.nextFree.get(uid) as number;
        } else if (!usable(uid)) {
          uid += 1;
        } else {
          this.statements.insert.run(uid, service, id, Date.now());
          return uid;
        }
      }
      throw new TenementError(
        ErrorCodes.NO_TENANT_UID,
        `no free tenant uid for ${service}:${id}: all ${this.range.to - this.range.from + 1} uids of settings.tenantUids (${this.range.from}-${this.range.to}) are held by instances or host accounts; widen settings.tenantUids, or remove instances and their data`,
      );
    });
  }

  /** Gives the instance's uid back to the range; true when it had one. */
  release(service: string, id: string): boolean {
    return this.statements.remove.run(service, id).changes > 0;
  }

  list(): UidAssignment[] {
    return this.statements.list.all() as UidAssignment[];
  }
}
