/**
 * `npm run bench -- migrate`: the pause of moving an instance between two fleet nodes under load (plugins/fleet/
 * move.ts), live (CRIU: dumped, carried with DATA_DIR, restored with its memory) against the cold move (stopped,
 * DATA_DIR carried, started again) of the same app in the same run, moves alternating, back and forth. A 3-server
 * NATS cluster; each node a child process in a mount namespace of its own with the same data path
 * (test/fleet-child-node.ts), as two hosts with the same settings.dataDir. Load: 4 clients (in this process) through both nodes,
 * each request timed; every failed request counted. The app starts in about 300 ms and keeps a 16 MiB table.
 * Needs root, nats-server and CRIU (npm run fetch:criu).
 *
 *   node --import tsx bench/migrate.ts        or   npm run bench -- migrate
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ServiceInput } from '../core/config/schema.ts';
import { criuDir, criuStatus } from '../plugins/snapshots/criu.ts';
import { startChildNode, type MoveNode } from '../test/fleet-child-node.ts';
import { request } from '../test/helpers.ts';
import { startNatsCluster } from '../test/nats-cluster.ts';
import { fmt, isMain, median, type Goal } from './lib.ts';

const APP = `import http from 'node:http';
await new Promise((resolve) => setTimeout(resolve, 300));
const table = Buffer.alloc(16 * 1024 * 1024, 7);
let count = 0;
http.createServer((req, res) => res.end(req.url === '/health' ? 'ok' : String(++count + table[count % 1000]))).listen(Number(process.env.PORT), '127.0.0.1');
`;

interface Move {
  mode: string;
  pauseMs: number;
  reason: string | null;
  phases: Record<string, number>;
}

export interface MigrateBenchResult {
  moves: number;
  live: Move[];
  cold: Move[];
  livePauseP50Ms: number;
  livePauseMaxMs: number;
  coldPauseP50Ms: number;
  coldPauseMaxMs: number;
  /** Slowest request seen during the live and the cold moves (client side). */
  liveSlowestMs: number;
  coldSlowestMs: number;
  requests: number;
  failed: number;
  /** The 1-minute load average before and after the moves: on a shared host every phase stretches with it. */
  load: [number, number];
  /** How each CRIU run found its kernel probe cache (criu-wrapper.ts): `root` /run/criu.kdat, `unprivileged` the dumps'. */
  kdat: { root: boolean; unprivileged: boolean };
  goals: Goal[];
}

export async function runMigrateBench(rounds = Number(process.env.MIGRATE_ROUNDS ?? 6)): Promise<MigrateBenchResult> {
  const status = await criuStatus();
  if (!status.usable) throw new Error(`CRIU is not usable: ${status.reason}`);
  if (process.getuid?.() !== 0) throw new Error('needs root (the second node runs in a mount namespace of its own)');
  const appDir = mkdtempSync(path.join(os.tmpdir(), 'bench-migrate-'));
  chmodSync(appDir, 0o755);
  writeFileSync(path.join(appDir, 'app.mjs'), APP, { mode: 0o644 });
  // Both nodes in child processes of their own, each with its own folder mounted over one shared data path: the
  // bench process only makes the load, so neither node shares its event loop with the load generator (until
  // 6 December node b1 ran in this process, beside the 4 clients).
  const dataPath = mkdtempSync(path.join(os.tmpdir(), 'bench-migrate-data-'));
  const files = [mkdtempSync(path.join(os.tmpdir(), 'bench-migrate-b1-')), mkdtempSync(path.join(os.tmpdir(), 'bench-migrate-b2-'))];
  const app = (live: boolean): ServiceInput => ({ command: `${process.execPath} ${path.join(appDir, 'app.mjs')}`, health: '/health', startupTimeout: '30s', idleTimeout: 0, autoCreate: { max: 10, perAddress: { count: 10_000, window: '1m' } }, fleet: { labels: {}, live } });
  const services = { live: app(true), cold: app(false) };
  const cluster = await startNatsCluster({ size: 3 });
  const closers: Array<() => Promise<unknown>> = [() => cluster.stop()];
  try {
    const m1 = await startChildNode('b1', cluster.urls, services, dataPath, files[0]!);
    closers.unshift(() => m1.close());
    const m2 = await startChildNode('b2', [cluster.urls[1]!, cluster.urls[0]!, cluster.urls[2]!], services, dataPath, files[1]!);
    closers.unshift(() => m2.close());
    const nodes: MoveNode[] = [m1, m2];
    const token = readFileSync(path.join(m1.files, 'admin.token'), 'utf8').trim();
    const api = async <T>(url: string, init: { method?: string; body?: string } = {}): Promise<T> => {
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      if (init.body !== undefined) headers['content-type'] = 'application/json';
      const reply = await request(m1.url, 'localhost', url, { ...init, headers, timeoutMs: 180_000 });
      if (reply.status !== 200) throw new Error(`${init.method ?? 'GET'} ${url}: ${reply.status} ${reply.body}`);
      return JSON.parse(reply.body) as T;
    };
    const liveNodes = async () => (await api<{ nodes: Array<{ live: boolean }> }>('/api/fleet/nodes')).nodes.filter((n) => n.live).length;
    const deadline = Date.now() + 30_000;
    while ((await liveNodes()) < 2) {
      if (Date.now() > deadline) throw new Error('both nodes did not become live in 30 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    for (const service of ['live', 'cold']) {
      for (const node of nodes) {
        const reply = await request(node.url, `a.${service}.localhost`, '/', { timeoutMs: 60_000 });
        if (reply.status !== 200) throw new Error(`${service}:a through ${node.id}: ${reply.status} ${reply.body}`);
      }
    }
    const ownerOf = async (service: string): Promise<string> => {
      const { placements } = await api<{ placements: Array<{ service: string; id: string; node: string }> }>('/api/fleet/placements');
      const placement = placements.find((p) => p.service === service && p.id === 'a');
      if (!placement) throw new Error(`no placement for ${service}:a`);
      return placement.node;
    };

    let stopping = false;
    let requests = 0;
    let failed = 0;
    // Every request's start and end: the slowest one that started during a move is what a client waited at most.
    const timed: Array<{ service: string; start: number; ms: number }> = [];
    const windows: Array<{ service: 'live' | 'cold'; start: number; end: number }> = [];
    const loops = [0, 1, 2, 3].map(async (i) => {
      const service = i % 2 === 0 ? 'live' : 'cold';
      const node = nodes[i >> 1]!;
      while (!stopping) {
        const started = performance.now();
        const reply = await request(node.url, `a.${service}.localhost`, '/', { timeoutMs: 60_000 }).catch(() => ({ status: 0 }));
        const ms = performance.now() - started;
        requests++;
        if (reply.status !== 200) failed++;
        if (timed.length < 1_000_000) timed.push({ service, start: started, ms });
      }
    });
    const loadBefore = os.loadavg()[0]!;
    const moves: Record<'live' | 'cold', Move[]> = { live: [], cold: [] };
    for (let round = 0; round < rounds; round++) {
      for (const service of ['live', 'cold'] as const) {
        const owner = await ownerOf(service);
        const to = owner === 'b1' ? 'b2' : 'b1';
        const start = performance.now();
        const moved = api<Move>(`/api/fleet/instances/${service}/a/move`, { method: 'POST', body: JSON.stringify({ to }) });
        const move = await moved.finally(() => windows.push({ service, start, end: performance.now() }));
        moves[service].push(move);
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    }
    stopping = true;
    await Promise.all(loops);
    const pauses = (list: Move[]): number[] => list.map((m) => m.pauseMs);
    const slowest = { live: 0, cold: 0 };
    for (const w of windows) for (const t of timed) if (t.service === w.service && t.start >= w.start && t.start <= w.end) slowest[w.service] = Math.max(slowest[w.service], t.ms);
    const result: MigrateBenchResult = {
      moves: rounds * 2,
      live: moves.live,
      cold: moves.cold,
      livePauseP50Ms: median(pauses(moves.live)),
      livePauseMaxMs: Math.max(...pauses(moves.live)),
      coldPauseP50Ms: median(pauses(moves.cold)),
      coldPauseMaxMs: Math.max(...pauses(moves.cold)),
      liveSlowestMs: slowest.live,
      coldSlowestMs: slowest.cold,
      requests,
      failed,
      load: [loadBefore, os.loadavg()[0]!],
      kdat: kdatCaches(),
      goals: [],
    };
    const allLive = moves.live.every((m) => m.mode === 'live');
    result.goals.push({
      name: 'migration pause (live move under load)',
      measured: `p50 ${fmt(result.livePauseP50Ms)} ms, max ${fmt(result.livePauseMaxMs)} ms, ${failed} failed of ${requests}${allLive ? '' : ' (some moves were not live)'}`,
      goal: 'under 500 ms, 0 failed requests',
      met: allLive && result.livePauseMaxMs < 500 && failed === 0,
    });
    return result;
  } finally {
    for (const close of closers) await close().catch(() => undefined);
    rmSync(appDir, { recursive: true, force: true });
    for (const dir of [...files, dataPath]) rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether CRIU will load its kernel probe caches (criu-wrapper.ts); without them each dump and restore probes. */
function kdatCaches(): { root: boolean; unprivileged: boolean } {
  const size = (file: string): number => statSync(file, { throwIfNoEntry: false })?.size ?? 0;
  return { root: size('/run/criu.kdat') > 0, unprivileged: size(path.join(criuDir(), 'kdat', 'criu.kdat')) > 0 };
}

export function formatMigrate(r: MigrateBenchResult): string {
  const phases = (list: Move[]): string => {
    const keys = Object.keys(list[0]?.phases ?? {});
    return keys.map((k) => `${k} ${fmt(median(list.map((m) => m.phases[k] ?? 0)))}`).join(', ');
  };
  return [
    `migrate (2 fleet nodes, 3-server NATS; ${r.moves} moves alternating live/cold under 4 clients; same run)`,
    `  live (CRIU) pause: p50 ${fmt(r.livePauseP50Ms)} ms, max ${fmt(r.livePauseMaxMs)} ms; slowest request during a live move ${fmt(r.liveSlowestMs)} ms`,
    `    median phases (ms): ${phases(r.live)}`,
    `    each (pause: stop/transfer/start ms): ${r.live.map((m) => `${m.pauseMs}: ${m.phases.stop ?? 0}/${m.phases.transfer ?? 0}/${m.phases.start ?? 0}`).join(', ')}`,
    `  cold (stop-copy-start) pause: p50 ${fmt(r.coldPauseP50Ms)} ms, max ${fmt(r.coldPauseMaxMs)} ms; slowest request during a cold move ${fmt(r.coldSlowestMs)} ms`,
    `    median phases (ms): ${phases(r.cold)}`,
    `  live / cold pause p50: ${fmt(r.livePauseP50Ms / r.coldPauseP50Ms)}x; requests ${r.requests}, failed ${r.failed} (goal: pause under 500 ms, 0 failed)`,
    `  load average ${fmt(r.load[0])} before, ${fmt(r.load[1])} after; CRIU's kernel probe cache: root ${r.kdat.root ? 'yes' : 'no'}, unprivileged dumps ${r.kdat.unprivileged ? 'yes' : 'no'}`,
    ...r.live.filter((m) => m.mode !== 'live').map((m) => `  a live move fell back: ${m.reason}`),
  ].join('\n');
}

if (isMain(import.meta.url)) {
  runMigrateBench().then(
    (result) => {
      process.stdout.write(`${formatMigrate(result)}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`migrate bench failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
}
