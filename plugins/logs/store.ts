import type Database from 'better-sqlite3';
import type { PluginStore } from '../../core/plugin-context.ts';
import type { LogStream } from '../../core/types.ts';
import { buildQuery, type LogFilter } from './sql.ts';
import { LOG_MIGRATIONS } from './schema.ts';

/** One captured line as it is stored and served. */
export interface LogRecord {
  at: number;
  service: string;
  id: string;
  stream: LogStream;
  line: string;
}

export interface Usage {
  service: string;
  id: string;
  lines: number;
  bytes: number;
}

/** Which lines retention removes, oldest first. */
export type DeleteScope =
  | { kind: 'all' }
  | { kind: 'instance'; service: string; id: string }
  | { kind: 'olderThan'; at: number };

/**
 * What a stored line costs against the retention budgets: its characters plus a fixed overhead, fitted so the
 * sum tracks the database file's real size (the row, three index entries and the full-text postings come to
 * about 1.3 bytes per character plus 90 per line on the synthetic lines of bench/logs-search.ts).
 */
const TEXT_FACTOR = 1.3;
const ROW_OVERHEAD_BYTES = 90;
export const lineCost = (service: string, id: string, line: string): number =>
  Math.ceil((line.length + service.length + id.length) * TEXT_FACTOR) + ROW_OVERHEAD_BYTES;

const STREAM_CODE: Record<LogStream, number> = { stdout: 1, stderr: 2 };
const STREAM_NAME: Record<number, LogStream> = { 1: 'stdout', 2: 'stderr' };

interface Row {
  at: number;
  service: string;
  instance: string;
  stream: number;
  line: string;
}

interface Victim {
  seq: number;
  service: string;
  instance: string;
  bytes: number;
  line: string;
}

const usageKey = (service: string, id: string): string => `${service}:${id}`;

/**
 * Persisted instance output: batched inserts, newest-first queries (optionally full-text), and oldest-first
 * deletion for retention. Every statement is prepared once (query shapes are cached by which filters they use).
 * Keeps a mirror of `log_usage` in memory so budget checks cost nothing.
 */
export class LogStore {
  private readonly usage = new Map<string, Usage>();
  private totals = { lines: 0, bytes: 0 };
  private readonly queries = new Map<string, Database.Statement>();
  private readonly statements;

  /** Applies the plugin's migrations through its store (versioned under the plugin's name, 'logs'). */
  static open(store: Pick<PluginStore, 'migrate' | 'db'>): LogStore {
    store.migrate(LOG_MIGRATIONS);
    return new LogStore(store.db);
  }

  private constructor(private readonly db: Database.Database) {
    this.statements = {
      insert: db.prepare('INSERT INTO log_lines (at, service, instance, stream, bytes, line) VALUES (?, ?, ?, ?, ?, ?)'),
      index: db.prepare('INSERT INTO log_fts (rowid, line) VALUES (?, ?)'),
      // An external-content FTS5 table forgets a row by being told its exact old text.
      unindex: db.prepare("INSERT INTO log_fts (log_fts, rowid, line) VALUES ('delete', ?, ?)"),
      addUsage: db.prepare(
        `INSERT INTO log_usage (service, instance, lines, bytes) VALUES (?, ?, ?, ?)
         ON CONFLICT (service, instance) DO UPDATE SET lines = lines + excluded.lines, bytes = bytes + excluded.bytes`,
      ),
      subtractUsage: db.prepare('UPDATE log_usage SET lines = lines - ?, bytes = bytes - ? WHERE service = ? AND instance = ?'),
      dropEmptyUsage: db.prepare('DELETE FROM log_usage WHERE service = ? AND instance = ? AND lines <= 0'),
      listUsage: db.prepare('SELECT service, instance AS id, lines, bytes FROM log_usage'),
      deleteLine: db.prepare('DELETE FROM log_lines WHERE seq = ?'),
      oldest: db.prepare('SELECT seq, service, instance, bytes, line FROM log_lines ORDER BY seq LIMIT ?'),
      oldestOf: db.prepare('SELECT seq, service, instance, bytes, line FROM log_lines WHERE instance = ? AND service = ? ORDER BY seq LIMIT ?'),
      olderThan: db.prepare('SELECT seq, service, instance, bytes, line FROM log_lines WHERE at < ? ORDER BY at LIMIT ?'),
      // Time bounds become rowid bounds through the `at` index, so a range far in the past is a seek, not a scan.
      firstSince: db.prepare('SELECT seq FROM log_lines WHERE at >= ? ORDER BY at, seq LIMIT 1').pluck(),
      lastUntil: db.prepare('SELECT seq FROM log_lines WHERE at <= ? ORDER BY at DESC, seq DESC LIMIT 1').pluck(),
    };
    for (const row of this.statements.listUsage.all() as Usage[]) {
      this.usage.set(usageKey(row.service, row.id), row);
      this.totals.lines += row.lines;
      this.totals.bytes += row.bytes;
    }
  }

  /** Lines and accounted bytes stored, over all instances. */
  get total(): { lines: number; bytes: number } {
    return { ...this.totals };
  }

  usageOf(service: string, id: string): Usage | undefined {
    return this.usage.get(usageKey(service, id));
  }

  instances(): Usage[] {
    return [...this.usage.values()];
  }

  /** Stores a batch in one transaction (one fsync, one FTS segment write). */
  insert(records: readonly LogRecord[]): void {
    if (records.length === 0) return;
    const added = new Map<string, Usage>();
    this.db.transaction(() => {
      for (const r of records) {
        const bytes = lineCost(r.service, r.id, r.line);
        const { lastInsertRowid } = this.statements.insert.run(r.at, r.service, r.id, STREAM_CODE[r.stream], bytes, r.line);
        this.statements.index.run(lastInsertRowid, r.line);
        const key = usageKey(r.service, r.id);
        const entry = added.get(key) ?? { service: r.service, id: r.id, lines: 0, bytes: 0 };
        entry.lines += 1;
        entry.bytes += bytes;
        added.set(key, entry);
      }
      for (const a of added.values()) this.statements.addUsage.run(a.service, a.id, a.lines, a.bytes);
    })();
    this.applyUsage(added, 1);
  }

  /**
   * The newest `limit` lines matching `filter`, returned oldest first. `search` is an FTS5 query (already
   * quoted by the caller); time bounds are milliseconds since the epoch, inclusive.
   */
  query(filter: LogFilter, limit: number): LogRecord[] {
    const params: Record<string, string | number> = { limit };
    if (filter.since !== undefined) {
      const lo = this.statements.firstSince.get(filter.since) as number | undefined;
      if (lo === undefined) return [];
      params.lo = lo;
    }
    if (filter.until !== undefined) {
      const hi = this.statements.lastUntil.get(filter.until) as number | undefined;
      if (hi === undefined) return [];
      params.hi = hi;
    }
    const { key, sql, bind } = buildQuery(filter);
    let statement = this.queries.get(key);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.queries.set(key, statement);
    }
    Object.assign(params, bind);
    if (filter.stream !== undefined) params.stream = STREAM_CODE[filter.stream];
    const rows = statement.all(params) as Row[];
    const out: LogRecord[] = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const row = rows[rows.length - 1 - i]!;
      out[i] = { at: row.at, service: row.service, id: row.instance, stream: STREAM_NAME[row.stream]!, line: row.line };
    }
    return out;
  }

  /**
   * Deletes the oldest lines in `scope` until at least `bytes` are freed (Infinity: every line in scope), at most
   * `maxRows` in this one transaction so a large clean-up is spread over several turns of the event loop.
   */
  deleteOldest(scope: DeleteScope, bytes: number, maxRows: number): { lines: number; bytes: number } {
    const removed = new Map<string, Usage>();
    let freed = 0;
    let lines = 0;
    this.db.transaction(() => {
      const victims = this.victims(scope, maxRows);
      for (const v of victims) {
        if (freed >= bytes) break;
        this.statements.deleteLine.run(v.seq);
        this.statements.unindex.run(v.seq, v.line);
        freed += v.bytes;
        lines += 1;
        const key = usageKey(v.service, v.instance);
        const entry = removed.get(key) ?? { service: v.service, id: v.instance, lines: 0, bytes: 0 };
        entry.lines += 1;
        entry.bytes += v.bytes;
        removed.set(key, entry);
      }
      for (const r of removed.values()) {
        this.statements.subtractUsage.run(r.lines, r.bytes, r.service, r.id);
        this.statements.dropEmptyUsage.run(r.service, r.id);
      }
    })();
    this.applyUsage(removed, -1);
    return { lines, bytes: freed };
  }

  private victims(scope: DeleteScope, maxRows: number): Victim[] {
    switch (scope.kind) {
      case 'all':
        return this.statements.oldest.all(maxRows) as Victim[];
      case 'instance':
        return this.statements.oldestOf.all(scope.id, scope.service, maxRows) as Victim[];
      case 'olderThan':
        return this.statements.olderThan.all(scope.at, maxRows) as Victim[];
    }
  }

  private applyUsage(changes: Map<string, Usage>, sign: 1 | -1): void {
    for (const [key, change] of changes) {
      const entry = this.usage.get(key) ?? { service: change.service, id: change.id, lines: 0, bytes: 0 };
      entry.lines += sign * change.lines;
      entry.bytes += sign * change.bytes;
      if (entry.lines <= 0) this.usage.delete(key);
      else this.usage.set(key, entry);
      this.totals.lines += sign * change.lines;
      this.totals.bytes += sign * change.bytes;
    }
  }
}
