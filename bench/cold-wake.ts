/**
 * Cold wake: how long the first request to a hibernated examples/notes instance takes through Tenement's proxy,
 * against starting the same app (examples/notes/app.mjs) bare with PORT/DATA_DIR and polling it every
 * BENCH_BARE_POLL_MS (2 ms: Tenement's own finest readiness poll) until it answers 200 once. Cycles alternate
 * between the two so drift hits both alike.
 *
 *   node --import tsx bench/cold-wake.ts
 *
 * Env: BENCH_WAKE_CYCLES (15), BENCH_BARE_POLL_MS (2).
 */
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { defaultPlugins } from '../cli/default-plugins.ts';
import type { ConfigInput } from '../core/config/schema.ts';
import { createTestKernel } from '../core/test-kernel.ts';
import notesConfig from '../examples/notes/tenement.config.ts';
import {
  type Goal,
  ROOT,
  fmt,
  freePort,
  httpGet,
  isMain,
  makeTempDir,
  median,
  percentile,
  removeTempDir,
  sleep,
  table,
  waitForOk,
} from './lib.ts';

const NOTES_DIR = path.join(ROOT, 'examples', 'notes');
const HOST = 'bench.notes.localhost';
const PAUSE_MS = 150;

export interface WakeSample {
  /** Request sent to response fully read, through Tenement, ms. */
  totalMs: number;
  /** Request sent to the supervisor starting the launch (routing, wake hook), ms (Date.now granularity). */
  beforeLaunchMs: number;
  /** Launch start to ready: port probe, mkdir, spawn, readiness polling, ms. */
  launchToReadyMs: number;
  /**
   * The app printing 'listening' (its stdout line, as Tenement captured it) to Tenement declaring it ready:
   * the lag of readiness polling, ms; null when the line was not seen.
   */
  listeningToReadyMs: number | null;
  /** Ready to response read: proxying the request, ms. */
  afterReadyMs: number;
}

export interface ColdWakeResult {
  cycles: number;
  barePollMs: number;
  tenement: WakeSample[];
  bareMs: number[];
  tenementMedianMs: number;
  bareMedianMs: number;
  /** Tenement median / bare median. */
  ratio: number;
  breakdownMedianMs: { beforeLaunch: number; launchToReady: number; listeningToReady: number; afterReady: number };
  goals: Goal[];
}

/** The notes app started bare, as Tenement would (own process group, piped output), polled until it answers. */
async function bareStart(dataDir: string, pollMs: number): Promise<number> {
  const port = await freePort();
  const started = performance.now();
  const child = spawn('node', ['app.mjs'], {
    cwd: NOTES_DIR,
    env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, TENEMENT_SERVICE: 'notes', TENEMENT_INSTANCE: 'bare' },
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.resume();
  child.stderr.resume();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        const reply = await httpGet(port, HOST, '/', 5_000);
        if (reply.status === 200) return performance.now() - started;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error('bare notes app did not answer within 10 s');
      await sleep(pollMs);
    }
  } finally {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }
}

export async function runColdWakeBench(options: { cycles?: number; log?: (line: string) => void } = {}): Promise<ColdWakeResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const cycles = options.cycles ?? Number(process.env.BENCH_WAKE_CYCLES ?? 15);
  const pollMs = Number(process.env.BENCH_BARE_POLL_MS ?? 2);
  const dir = makeTempDir('wake');
  const config: ConfigInput = {
    ...notesConfig,
    settings: { ...notesConfig.settings, port: 0, listen: '127.0.0.1', dataDir: path.join(dir, 'data') },
    instances: { notes: ['bench'] },
  };
  const kernel = await createTestKernel({ plugins: defaultPlugins, config, dir: NOTES_DIR });
  const port = Number(new URL(kernel.url).port);
  const bareDataDir = path.join(dir, 'bare');
  mkdirSync(bareDataDir, { recursive: true });
  try {
    await waitForOk(port, HOST, 20_000, `${HOST} through the kernel`);
    const instance = kernel.instances.get('notes', 'bench');
    if (!instance) throw new Error('instance notes:bench was not created');
    log(`cold wake: ${cycles} cycles (+1 warm-up) of hibernate -> GET / through Tenement, and bare start -> first 200 (polled every ${pollMs} ms)`);
    const tenement: WakeSample[] = [];
    const bareMs: number[] = [];
    for (let cycle = 0; cycle <= cycles; cycle++) {
      await kernel.hibernate(instance, 'benchmark'); // a no-op after the first cycle
      if (instance.state !== 'hibernated') throw new Error(`notes:bench is ${instance.state} after hibernate()`);
      await sleep(PAUSE_MS);
      const sentAt = Date.now();
      const started = performance.now();
      const reply = await httpGet(port, HOST, '/', 15_000);
      const totalMs = performance.now() - started;
      const doneAt = Date.now();
      if (reply.status !== 200) throw new Error(`wake request answered ${reply.status}: ${reply.body.slice(0, 300)}`);
      const launchAt = instance.startedAt ?? sentAt;
      const readyAt = instance.readyAt ?? doneAt;
      const listening = instance.logs.query({ search: 'listening', since: launchAt }).at(-1);
      const sample: WakeSample = {
        totalMs,
        beforeLaunchMs: launchAt - sentAt,
        launchToReadyMs: readyAt - launchAt,
        listeningToReadyMs: listening ? readyAt - listening.at : null,
        afterReadyMs: doneAt - readyAt,
      };
      // Back to sleep before the bare start, so both starts happen with the same processes around.
      await kernel.hibernate(instance, 'benchmark');
      await sleep(PAUSE_MS);
      const bare = await bareStart(bareDataDir, pollMs);
      if (cycle === 0) {
        log(`  warm-up: tenement ${fmt(totalMs, 1)} ms, bare ${fmt(bare, 1)} ms (not counted)`);
        continue;
      }
      tenement.push(sample);
      bareMs.push(bare);
      const lag = sample.listeningToReadyMs === null ? '?' : String(sample.listeningToReadyMs);
      log(`  cycle ${String(cycle).padStart(2)}: tenement ${fmt(totalMs, 1).padStart(6)} ms (poll lag ${lag.padStart(3)} ms)   bare ${fmt(bare, 1).padStart(6)} ms`);
    }
    const tenementMedianMs = median(tenement.map((s) => s.totalMs));
    const bareMedianMs = median(bareMs);
    const ratio = tenementMedianMs / bareMedianMs;
    return {
      cycles,
      barePollMs: pollMs,
      tenement,
      bareMs,
      tenementMedianMs,
      bareMedianMs,
      ratio,
      breakdownMedianMs: {
        beforeLaunch: median(tenement.map((s) => s.beforeLaunchMs)),
        launchToReady: median(tenement.map((s) => s.launchToReadyMs)),
        listeningToReady: median(tenement.flatMap((s) => (s.listeningToReadyMs === null ? [] : [s.listeningToReadyMs]))),
        afterReady: median(tenement.map((s) => s.afterReadyMs)),
      },
      goals: [
        {
          name: 'cold wake vs bare start',
          measured: `${fmt(ratio)}x (${fmt(tenementMedianMs, 1)} vs ${fmt(bareMedianMs, 1)} ms)`,
          goal: '<= 1.15x',
          met: ratio <= 1.15,
        },
      ],
    };
  } finally {
    await kernel.close();
    removeTempDir(dir);
  }
}

const spread = (values: readonly number[]): string[] =>
  [median(values), percentile(values, 10), percentile(values, 90), Math.min(...values), Math.max(...values)].map((v) => fmt(v, 1));

export function formatColdWake(result: ColdWakeResult): string {
  const tenementTotals = result.tenement.map((s) => s.totalMs);
  const b = result.breakdownMedianMs;
  return [
    `== cold wake: examples/notes, ${result.cycles} cycles ==`,
    table(
      ['path', 'median ms', 'p10 ms', 'p90 ms', 'min ms', 'max ms'],
      [
        ['tenement (hibernated -> 200)', ...spread(tenementTotals)],
        [`bare (spawn -> first 200, poll ${result.barePollMs} ms)`, ...spread(result.bareMs)],
      ],
    ),
    `ratio tenement/bare (medians): ${fmt(result.ratio)}x   (goal <= 1.15x)`,
    `tenement breakdown (medians, ms): request->launch ${fmt(b.beforeLaunch, 0)}, launch->ready ${fmt(b.launchToReady, 0)}` +
      ` (of which app 'listening' -> ready, the readiness-poll lag: ${fmt(b.listeningToReady, 0)}), ready->response ${fmt(b.afterReady, 0)}`,
  ].join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runColdWakeBench();
  process.stdout.write(`\n${formatColdWake(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'} ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
