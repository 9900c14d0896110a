import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { ErrorCodes, TenementError, errorMessage } from './errors.ts';

export type DesiredState = 'running' | 'hibernated' | 'stopped';

const DESIRED: Readonly<Record<DesiredState, DesiredState>> = { running: 'running', hibernated: 'hibernated', stopped: 'stopped' };

export interface StoredInstance {
  service: string;
  id: string;
  desired: DesiredState;
  weight: number;
  pid: number | null;
  pgid: number | null;
}

/**
 * Versioned schema steps, applied in order inside one transaction each. Append only: a released step is never
 * edited, so every database can be brought forward from any earlier version.
 */
export const MIGRATIONS: ReadonlyArray<{ version: number; name: string; sql: string }> = [
  {
    version: 1,
    name: 'instances',
    sql: `
      CREATE TABLE instances (
        service    TEXT NOT NULL,
        id         TEXT NOT NULL,
        desired    TEXT NOT NULL CHECK (desired IN ('running', 'hibernated', 'stopped')),
        weight     INTEGER NOT NULL CHECK (weight BETWEEN 0 AND 100),
        pid        INTEGER,
        pgid       INTEGER,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (service, id)
      ) WITHOUT ROWID;
    `,
  },
  {
    version: 2,
    name: 'owner_migrations',
    sql: `
      CREATE TABLE owner_migrations (
        owner   TEXT PRIMARY KEY,
        version INTEGER NOT NULL
      ) WITHOUT ROWID;
    `,
  },
];

export interface MigrationStep {
  version: number;
  sql: string;
}

export interface StoreOptions {
  /**
   * What in the data dir shows that a server ran here before (e.g. "admin.token exists"), or null. A database
   * with no tables next to such state was truncated or replaced: opening it would silently start a fresh state
   * (every token invalid, a new admin token, no instances), so the store refuses instead.
   */
  priorState?: string | null;
}

const RECOVER_HINT = 'restore it from a backup; to start over on purpose, move the data dir aside';

/**
 * An existing database with no schema (0 bytes, or no tables and user_version 0) next to earlier state is
 * refused. Checked before any pragma: setting WAL mode would already write a header into it.
 */
function refuseBlank(db: Database.Database, file: string, priorState: string): void {
  const tables = (db.prepare('SELECT count(*) AS n FROM sqlite_master').get() as { n: number }).n;
  if (tables > 0 || (db.pragma('user_version', { simple: true }) as number) !== 0) return;
  throw new TenementError(
    ErrorCodes.STORE,
    `the state database ${file} is empty (${statSync(file).size} bytes, no tables) but ${priorState}: it was truncated or replaced, ` +
      `and starting on it would start a fresh state (every token invalid, a new admin token, no instances). Refusing to start: ${RECOVER_HINT} (or delete ${file} and admin.token next to it)`,
  );
}

/** Tenement's embedded state: `{dataDir}/tenement.db`, SQLite in WAL mode, mode 0600 whatever the umask. */
export class Store {
  readonly db: Database.Database;
  private readonly statements;

  constructor(
    readonly file: string,
    options: StoreOptions = {},
  ) {
    let db: Database.Database | null = null;
    try {
      mkdirSync(path.dirname(file), { recursive: true });
      // SQLite would create the file 0644 (less the umask) and give the WAL and SHM the same mode: create it
      // 0600 first. 'wx' also tells a new database from an existing one, however empty that one is.
      let existed = false;
      try {
        closeSync(openSync(file, 'wx', 0o600));
        chmodSync(file, 0o600);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
        existed = true;
      }
      db = new Database(file);
      this.db = db;
      if (existed && options.priorState) refuseBlank(db, file, options.priorState);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('busy_timeout = 5000');
      this.migrate();
    } catch (error) {
      if (db?.open) db.close();
      if (error instanceof TenementError) throw error;
      throw new TenementError(
        ErrorCodes.STORE,
        `cannot open the state database ${file}: ${errorMessage(error)}; check that it is Tenement's database and readable by this user, or ${RECOVER_HINT}`,
        { cause: error },
      );
    }
    this.statements = {
      upsert: this.db.prepare(
        `INSERT INTO instances (service, id, desired, weight, updated_at) VALUES (@service, @id, @desired, @weight, @now)
         ON CONFLICT (service, id) DO UPDATE SET desired = excluded.desired, weight = excluded.weight, updated_at = excluded.updated_at`,
      ),
      setProcess: this.db.prepare(`UPDATE instances SET pid = ?, pgid = ?, updated_at = ? WHERE service = ? AND id = ?`),
      remove: this.db.prepare(`DELETE FROM instances WHERE service = ? AND id = ?`),
      list: this.db.prepare(`SELECT service, id, desired, weight, pid, pgid FROM instances ORDER BY service, id`),
    };
  }

  get schemaVersion(): number {
    return this.db.pragma('user_version', { simple: true }) as number;
  }

  private migrate(): void {
    const current = this.db.pragma('user_version', { simple: true }) as number;
    for (const step of MIGRATIONS) {
      if (step.version <= current) continue;
      this.db.transaction(() => {
        this.db.exec(step.sql);
        this.db.pragma(`user_version = ${step.version}`);
      })();
    }
  }

  /**
   * Schema steps owned by a plugin (or a kernel part), versioned separately from the kernel's own so each
   * owner can add tables without coordinating version numbers. Applied in order, each in one transaction.
   */
  migrateOwner(owner: string, steps: readonly MigrationStep[]): void {
    const row = this.db.prepare('SELECT version FROM owner_migrations WHERE owner = ?').get(owner) as { version: number } | undefined;
    const current = row?.version ?? 0;
    for (const step of [...steps].sort((a, b) => a.version - b.version)) {
      if (step.version <= current) continue;
      this.db.transaction(() => {
        this.db.exec(step.sql);
        this.db
          .prepare('INSERT INTO owner_migrations (owner, version) VALUES (?, ?) ON CONFLICT (owner) DO UPDATE SET version = excluded.version')
          .run(owner, step.version);
      })();
    }
  }

  saveInstance(service: string, id: string, desired: DesiredState, weight: number): void {
    this.statements.upsert.run({ service, id, desired, weight, now: Date.now() });
  }

  saveProcess(service: string, id: string, pid: number | null, pgid: number | null): void {
    this.statements.setProcess.run(pid, pgid, Date.now(), service, id);
  }

  removeInstance(service: string, id: string): void {
    this.statements.remove.run(service, id);
  }

  listInstances(): StoredInstance[] {
    const rows = this.statements.list.all() as StoredInstance[];
    // SQLite hands out a new string per row; a restored instance keeps its desired state as its state, so 10,000
    // hibernated instances held 10,000 copies of 'hibernated'. The literal is one shared string.
    for (const row of rows) row.desired = DESIRED[row.desired];
    return rows;
  }

  /** Runs `work` in one transaction: many small writes at boot cost one fsync instead of one each. */
  batch<T>(work: () => T): T {
    return this.db.transaction(work)();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
