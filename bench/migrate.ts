/**
 * `npm run bench -- migrate`: the pause of moving an instance between two fleet nodes under load (plugins/fleet/
 * move.ts), live (CRIU: dumped, carried with DATA_DIR, restored with its memory) against the cold move (stopped,
 * DATA_DIR carried, started again) of the same app in the same run, moves alternating, back and forth. A 3-server
 * NATS cluster; the first node in this process, the second in a mount namespace of its own with the same data
 * path (test/fleet-child-node.ts), as two hosts with the same settings.dataDir. Load: 4 clients through both nodes,
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
import snapshots from '../plugins/snapshots/index.ts';
import { fleetOf } from '../plugins/fleet/index.ts';
import { startChildNode, type MoveNode } from '../test/fleet-child-node.ts';
import { closeNode, startNode } from '../test/fleet-harness.ts';
import { request, waitFor } from '../test/helpers.ts';
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
  const m2Files = mkdtempSync(path.join(os.tmpdir(), 'bench-migrate-m2-'));
  const app = (live: boolean): ServiceInput => ({ command: `${process.execPath} ${path.join(appDir, 'app.mjs')}`, health: '/health', startupTimeout: '30s', idleTimeout: 0, autoCreate: { max: 10, perAddress: { count: 10_000, window: '1m' } }, fleet: { labels: {}, live } });
  const services = { live: app(true), cold: app(false) };
  const cluster = await startNatsCluster({ size: 3 });
  const closers: Array<() => Promise<unknown>> = [() => cluster.stop()];
  try {
    const m1 = await startNode('b1', cluster.urls, services, {}, {}, [snapshots]);
    closers.unshift(() => closeNode(m1));
    const m2 = await startChildNode('b2', [cluster.urls[1]!, cluster.urls[0]!, cluster.urls[2]!], services, m1.dataDir, m2Files);
    closers.unshift(() => m2.close());
    const fleet = fleetOf('b1')!;
    await waitFor(() => fleet.state.nodes().filter((n) => n.live).length === 2, 'both nodes live', 30_000);
    const nodes: MoveNode[] = [{ id: 'b1', url: m1.kernel.url, files: m1.dataDir, close: () => closeNode(m1) }, m2];
    const token = readFileSync(path.join(m1.dataDir, 'admin.token'), 'utf8').trim();
    for (const service of ['live', 'cold']) {
      for (const node of nodes) {
        const reply = await request(node.url, `a.${service}.localhost`, '/', { timeoutMs: 60_000 });
        if (reply.status !== 200) throw new Error(`${service}:a through ${node.id}: ${reply.status} ${reply.body}`);
      }
    }

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
        const owner = fleet.state.placement(service, 'a')!.node;
        const to = owner === 'b1' ? 'b2' : 'b1';
        const start = performance.now();
        const reply = await request(m1.kernel.url, 'localhost', `/api/fleet/instances/${service}/a/move`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ to }),
          timeoutMs: 180_000,
        });
        windows.push({ service, start, end: performance.now() });
        if (reply.status !== 200) throw new Error(`move of ${service}:a to ${to}: ${reply.status} ${reply.body}`);
        moves[service].push(JSON.parse(reply.body) as Move);
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
    rmSync(m2Files, { recursive: true, force: true });
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
