/**
 * Log search: BENCH_LOG_LINES (1,000,000) synthetic log lines from 24 instances are written into a fresh state
 * database through the logs plugin's own store (plugins/logs/store.ts: the same inserts, FTS index and usage
 * accounting the plugin does, in batches of 50,000), then searches through the plugin's query path are timed
 * against a baseline measured in the same run: the same question asked with a substring scan
 * (`line LIKE '%text%'`, newest first, same limit) over the same table. Medians of BENCH_LOG_RUNS (7) runs,
 * the two alternating so drift hits both alike. Also prints the insert rate, the database size against the
 * bytes retention accounts for, and the time one retention chunk (CHUNK_ROWS deletions) takes.
 *
 *   node --import tsx bench/logs-search.ts
 */
import { statSync } from 'node:fs';
import path from 'node:path';
import { Store } from '../core/store.ts';
import type { LogStream } from '../core/types.ts';
import type { LogFilter } from '../plugins/logs/sql.ts';
import { CHUNK_ROWS } from '../plugins/logs/retention.ts';
import { LogStore, type LogRecord } from '../plugins/logs/store.ts';
import { type Goal, MB, fmt, fmtInt, isMain, makeTempDir, median, removeTempDir, table } from './lib.ts';

const BATCH = 50_000;
const GOAL_MS = 1_000;
const RARE_WORD = 'zanzibar';
const RARE_COUNT = 25;

export interface SearchTiming {
  name: string;
  /** The plugin's query (FTS5, or the plain index path when there is no search). */
  ftsMs: number;
  /** The substring-scan baseline; null when the row has none. */
  likeMs: number | null;
  /** likeMs / ftsMs: how many times faster the plugin answers. */
  speedup: number | null;
  rows: number;
  /** Whether both returned the same lines. */
  same: boolean | null;
}

export interface LogsSearchResult {
  lines: number;
  insertMs: number;
  dbBytes: number;
  accountedBytes: number;
  searches: SearchTiming[];
  deleteChunkMs: number;
  goals: Goal[];
}

// ---- synthetic, deterministic log lines ----

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const VOCABULARY = (
  'the a of to and in is for on with user session order payment invoice account token email notes sync backup ' +
  'upload download file image thumbnail report export import schedule reminder calendar event webhook retry ' +
  'started finished ready listening shutting down config loaded migrated table index vacuum checkpoint tenant ' +
  'billing plan trial expired renewed quota limit exceeded warning deprecated feature flag enabled disabled ' +
  'queue enqueued dequeued batch items parsed validated rejected accepted saved deleted updated created ' +
  'fetched rendered template page dashboard widget chart metrics sample latency memory heap gc pause cpu'
).split(' ');
const PATHS = ['/api/users', '/api/orders', '/api/notes', '/api/search', '/static/app.js', '/login', '/health', '/api/files'];
const METHODS = ['GET', 'GET', 'GET', 'GET', 'POST', 'PUT', 'DELETE'];
const TABLES = ['users', 'orders', 'notes', 'events', 'sessions'];

/** 24 instances (2 services x 12 tenants), the first tenants much busier than the last. */
const INSTANCES = ['app', 'api'].flatMap((service) => Array.from({ length: 12 }, (_, i) => ({ service, id: `tenant-${i + 1}` })));

const QUIET = { service: 'api', id: 'tenant-12' };

function makeLine(rnd: () => number): { line: string; stream: LogStream } {
  const int = (n: number): number => Math.floor(rnd() * n);
  const word = (): string => VOCABULARY[Math.floor(VOCABULARY.length * rnd() ** 2)]!;
  const kind = rnd();
  if (kind < 0.35) {
    const status = rnd() < 0.93 ? 200 : rnd() < 0.5 ? 404 : 500;
    return {
      line: `${METHODS[int(METHODS.length)]} ${PATHS[int(PATHS.length)]}/${int(100_000)} ${status} ${int(900) + 1}ms request_id=${int(2 ** 31).toString(16)}`,
      stream: 'stdout',
    };
  }
  if (kind < 0.5) return { line: `worker ${int(8)} processed job ${int(10_000_000)} in ${int(5_000)}ms`, stream: 'stdout' };
  if (kind < 0.6) return { line: `cache miss for key user:${int(1_000_000)}`, stream: 'stdout' };
  if (kind < 0.65) return { line: `ERROR connection refused to db-${int(4)}:5432 (retry ${int(5) + 1})`, stream: 'stderr' };
  if (kind < 0.7) return { line: `WARN slow query took ${int(9_000) + 1_000}ms: SELECT * FROM ${TABLES[int(TABLES.length)]} WHERE id = ${int(1e6)}`, stream: 'stderr' };
  const words = Array.from({ length: 5 + int(8) }, word);
  return { line: words.join(' '), stream: rnd() < 0.9 ? 'stdout' : 'stderr' };
}

/** Writes `total` lines through the plugin's store in batches, times spread evenly over the last 6 days. */
function fill(store: LogStore, total: number): number {
  const rnd = prng(42);
  const rare = new Set(Array.from({ length: RARE_COUNT }, () => Math.floor(rnd() * total)));
  const start = Date.now() - 6 * 86_400_000;
  const step = (6 * 86_400_000) / total;
  const started = performance.now();
  for (let done = 0; done < total; ) {
    const batch: LogRecord[] = [];
    for (const end = Math.min(total, done + BATCH); done < end; done++) {
      const { service, id } = INSTANCES[Math.floor(INSTANCES.length * rnd() ** 1.5)]!;
      let { line, stream } = makeLine(rnd);
      // The quietest instance never logs the common word: searching it there is the worst case (every match
      // of the word in the store is read and rejected).
      while (id === QUIET.id && service === QUIET.service && line.includes('processed')) ({ line, stream } = makeLine(rnd));
      batch.push({ at: Math.floor(start + done * step), service, id, stream, line: rare.has(done) ? `user reported ${RARE_WORD} outage ${line}` : line });
    }
    store.insert(batch);
  }
  return performance.now() - started;
}

// ---- timing ----

interface Case {
  name: string;
  filter: LogFilter;
  limit: number;
  /** The same question as a substring scan; absent for rows without a baseline. */
  like?: { sql: string; params: unknown[] };
}

const NEWEST = 'SELECT at, service, instance AS id, stream, line FROM log_lines';

function cases(): Case[] {
  return [
    { name: `rare word (${RARE_COUNT} lines), limit 100`, filter: { search: RARE_WORD }, limit: 100, like: { sql: `${NEWEST} WHERE line LIKE ? ORDER BY seq DESC LIMIT 100`, params: [`%${RARE_WORD}%`] } },
    { name: 'common word (~15%), limit 100', filter: { search: 'processed' }, limit: 100, like: { sql: `${NEWEST} WHERE line LIKE ? ORDER BY seq DESC LIMIT 100`, params: ['%processed%'] } },
    { name: 'common word (~15%), limit 10000', filter: { search: 'processed' }, limit: 10_000, like: { sql: `${NEWEST} WHERE line LIKE ? ORDER BY seq DESC LIMIT 10000`, params: ['%processed%'] } },
    { name: "phrase 'connection refused', limit 100", filter: { search: 'connection refused' }, limit: 100, like: { sql: `${NEWEST} WHERE line LIKE ? ORDER BY seq DESC LIMIT 100`, params: ['%connection refused%'] } },
    {
      name: "phrase 'cache miss', quietest instance, limit 100",
      filter: { search: 'cache miss', ...QUIET },
      limit: 100,
      like: { sql: `${NEWEST} WHERE instance = ? AND service = ? AND line LIKE ? ORDER BY seq DESC LIMIT 100`, params: [QUIET.id, QUIET.service, '%cache miss%'] },
    },
    {
      name: 'common word, in an instance without it',
      filter: { search: 'processed', ...QUIET },
      limit: 100,
      like: { sql: `${NEWEST} WHERE instance = ? AND service = ? AND line LIKE ? ORDER BY seq DESC LIMIT 100`, params: [QUIET.id, QUIET.service, '%processed%'] },
    },
    { name: 'rare word, one tenant (any service), limit 100', filter: { search: RARE_WORD, id: 'tenant-1' }, limit: 100, like: { sql: `${NEWEST} WHERE instance = ? AND line LIKE ? ORDER BY seq DESC LIMIT 100`, params: ['tenant-1', `%${RARE_WORD}%`] } },
    { name: 'no search: newest 100 of one tenant', filter: { id: 'tenant-5' }, limit: 100 },
    { name: 'no search: one tenant, a day ago, 100', filter: { id: 'tenant-5', until: Date.now() - 86_400_000 }, limit: 100 },
  ];
}

const time = <T>(work: () => T): { ms: number; value: T } => {
  const started = performance.now();
  const value = work();
  return { ms: performance.now() - started, value };
};

export async function runLogsSearchBench(): Promise<LogsSearchResult> {
  const total = Number(process.env.BENCH_LOG_LINES ?? 1_000_000);
  const runs = Number(process.env.BENCH_LOG_RUNS ?? 7);
  const dir = makeTempDir('logs');
  const state = new Store(path.join(dir, 'tenement.db'));
  try {
    const store = LogStore.open({ migrate: (steps) => state.migrateOwner('logs', steps), db: state.db });
    // The load is a fixture, not what is measured: without an fsync per checkpoint it takes seconds, not a minute.
    state.db.pragma('synchronous = OFF');
    process.stdout.write(`logs search: writing ${fmtInt(total)} lines through the plugin's store... `);
    const insertMs = fill(store, total);
    process.stdout.write(`${fmt(insertMs / 1000, 1)} s\n`);
    state.db.pragma('synchronous = NORMAL');
    state.db.pragma('wal_checkpoint(TRUNCATE)');
    const dbBytes = statSync(state.file).size;

    const db = state.db;
    const searches: SearchTiming[] = [];
    for (const c of cases()) {
      const like = c.like ? db.prepare(c.like.sql) : null;
      const ftsTimes: number[] = [];
      const likeTimes: number[] = [];
      let rows = 0;
      let same: boolean | null = null;
      // One warm-up of each, then alternate.
      for (let run = -1; run < runs; run++) {
        const fts = time(() => store.query(c.filter, c.limit));
        if (run >= 0) ftsTimes.push(fts.ms);
        rows = fts.value.length;
        if (like) {
          const scan = time(() => like.all(...c.like!.params) as LogRecord[]);
          if (run >= 0) likeTimes.push(scan.ms);
          if (run === -1) same = JSON.stringify(scan.value.reverse().map((r) => r.line)) === JSON.stringify(fts.value.map((r) => r.line));
        }
      }
      const ftsMs = median(ftsTimes);
      const likeMs = like ? median(likeTimes) : null;
      searches.push({ name: c.name, ftsMs, likeMs, speedup: likeMs === null ? null : likeMs / ftsMs, rows, same });
    }

    const chunks: number[] = [];
    for (let i = 0; i < 5; i++) chunks.push(time(() => store.deleteOldest({ kind: 'all' }, Infinity, CHUNK_ROWS)).ms);

    const slowest = Math.max(...searches.map((s) => s.ftsMs));
    const goals: Goal[] = [
      { name: 'slowest log search (median)', measured: `${fmt(slowest, 1)} ms`, goal: `< ${GOAL_MS} ms`, met: slowest < GOAL_MS },
      { name: 'log search answers equal the substring scan', measured: searches.every((s) => s.same !== false) ? 'equal' : 'differ', goal: 'equal', met: searches.every((s) => s.same !== false) },
    ];
    return { lines: total, insertMs, dbBytes, accountedBytes: store.total.bytes, searches, deleteChunkMs: median(chunks), goals };
  } finally {
    state.close();
    removeTempDir(dir);
  }
}

export function formatLogsSearch(r: LogsSearchResult): string {
  const rows = r.searches.map((s) => [
    s.name,
    `${fmt(s.ftsMs, 2)} ms`,
    s.likeMs === null ? '' : `${fmt(s.likeMs, 1)} ms`,
    s.speedup === null ? '' : `${fmt(s.speedup, 1)}x`,
    fmtInt(s.rows),
    s.same === null ? '' : s.same ? 'yes' : 'NO',
  ]);
  return [
    `== log search: ${fmtInt(r.lines)} lines, 24 instances ==`,
    `insert: ${fmtInt(r.lines / (r.insertMs / 1000))} lines/s through LogStore.insert (batches of ${fmtInt(BATCH)}, synchronous=OFF)`,
    `database: ${fmt(r.dbBytes / MB, 1)} MB on disk, ${fmt(r.accountedBytes / MB, 1)} MB accounted by retention (disk/accounted ${fmt(r.dbBytes / r.accountedBytes)}), ${fmt(r.dbBytes / r.lines, 0)} B/line`,
    `retention: ${fmt(r.deleteChunkMs, 1)} ms per chunk of ${fmtInt(CHUNK_ROWS)} deletions (median of 5; the event loop is held that long)`,
    '',
    table(['query (newest first)', 'plugin (FTS5)', "LIKE '%..%' scan", 'speedup', 'rows', 'same'], rows),
  ].join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runLogsSearchBench();
  process.stdout.write(`\n${formatLogsSearch(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'} ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
