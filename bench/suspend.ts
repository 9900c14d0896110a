/**
 * `npm run bench -- suspend`: wake from suspend (CRIU restore, plugins/snapshots) against a cold wake (the app
 * started again) for an app that takes 100 ms to start and one that takes 1 s, in one run, interleaved: the same
 * app as two services, `hibernate: { mode: 'suspend' }` and the default 'stop', in the process tier and in the
 * namespace tier (bwrap). Each wake is hibernated -> first 200 through the proxy. Also the image size and dump
 * time the plugin logged. Needs CRIU (npm run fetch:criu), root, and bwrap for the namespace rows.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { bootKernel } from '../core/boot.ts';
import { criuStatus } from '../plugins/snapshots/criu.ts';
import snapshots from '../plugins/snapshots/index.ts';
import processRuntime from '../runtimes/process/index.ts';
import namespaceRuntime from '../runtimes/namespace/index.ts';
import router from '../plugins/router/index.ts';
import health from '../plugins/health/index.ts';
import hibernate from '../plugins/hibernate/index.ts';
import { fmt, httpGet, isMain, makeTempDir, median, removeTempDir, sleep, table, type Goal } from './lib.ts';

const APP = `import http from 'node:http';
await new Promise((resolve) => setTimeout(resolve, Number(process.env.START_DELAY_MS)));
// Something in memory worth keeping: a 16 MiB table built at start.
const table = Buffer.alloc(16 * 1024 * 1024, 7);
let count = 0;
http.createServer((req, res) => res.end(req.url === '/health' ? 'ok' : String(++count + table[count]))).listen(Number(process.env.PORT), '127.0.0.1');
`;

export interface SuspendSample {
  tier: 'process' | 'namespace';
  startMs: number;
  coldMs: number[];
  suspendMs: number[];
  dumpMs: number[];
  restoreMs: number[];
  imageBytes: number;
}

export interface SuspendBenchResult {
  cycles: number;
  samples: SuspendSample[];
  goals: Goal[];
}

type Line = { msg: string; instance?: string; dumpMs?: number; bytes?: number; restoreMs?: number };

export async function runSuspendBench(cycles = Number(process.env.SUSPEND_CYCLES ?? 7)): Promise<SuspendBenchResult> {
  const status = await criuStatus();
  if (!status.usable) throw new Error(`CRIU is not usable: ${status.reason}`);
  const dir = makeTempDir('bench-suspend-');
  chmodSync(dir, 0o755);
  const app = path.join(dir, 'app.mjs');
  writeFileSync(app, APP, { mode: 0o644 });
  const lines: Line[] = [];
  const logger = pino({ level: 'info', base: undefined }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
  const service = (delay: number, mode: 'stop' | 'suspend', tier: SuspendSample['tier']) => ({
    command: `node ${app}`,
    // The namespace tier shows the host's cwd, not the app's folder: the app's folder is the cwd.
    cwd: dir,
    isolation: tier,
    health: '/health',
    idleTimeout: 0,
    startupTimeout: '30s',
    env: { START_DELAY_MS: String(delay) },
    hibernate: { mode },
  });
  const delays = [100, 1000];
  const tiers = ['process', 'namespace'] as const;
  const prefix = (tier: SuspendSample['tier']): string => (tier === 'process' ? '' : 'ns');
  const services = Object.fromEntries(
    tiers.flatMap((tier) => delays.flatMap((delay) => [[`${prefix(tier)}cold${delay}`, service(delay, 'stop', tier)], [`${prefix(tier)}susp${delay}`, service(delay, 'suspend', tier)]])),
  );
  const kernel = await bootKernel({ plugins: [processRuntime, namespaceRuntime, router, health, hibernate, snapshots], logger, config: { services } });
  try {
    const port = Number(new URL(kernel.url).port);
    const samples: SuspendSample[] = [];
    for (const [tier, delay] of tiers.flatMap((tier) => delays.map((delay) => [tier, delay] as const))) {
      const sample: SuspendSample = { tier, startMs: delay, coldMs: [], suspendMs: [], dumpMs: [], restoreMs: [], imageBytes: 0 };
      const pair = [`${prefix(tier)}cold${delay}`, `${prefix(tier)}susp${delay}`] as const;
      for (const name of pair) {
        await kernel.spawnInstance(name, 'a');
        if ((await httpGet(port, `a.${name}.localhost`)).status !== 200) throw new Error(`${name} did not answer`);
      }
      for (let cycle = 0; cycle <= cycles; cycle++) {
        for (const name of pair) {
          const instance = kernel.instances.get(name, 'a')!;
          await kernel.hibernate(instance, 'benchmark');
          await sleep(100);
          const started = performance.now();
          const reply = await httpGet(port, `a.${name}.localhost`, '/', 60_000);
          if (reply.status !== 200) throw new Error(`${name} answered ${reply.status}: ${reply.body.slice(0, 200)}`);
          if (cycle === 0) continue;
          (name === pair[0] ? sample.coldMs : sample.suspendMs).push(performance.now() - started);
        }
      }
      const mine = lines.filter((l) => l.instance === `${pair[1]}:a`);
      sample.dumpMs = mine.filter((l) => l.msg === 'suspended').map((l) => l.dumpMs!).slice(1);
      sample.restoreMs = mine.filter((l) => l.msg === 'restored from suspend').map((l) => l.restoreMs!).slice(1);
      sample.imageBytes = median(mine.filter((l) => l.msg === 'suspended').map((l) => l.bytes!));
      const fellBack = mine.filter((l) => l.msg === 'restore failed: starting cold' || l.msg === 'suspend failed: stopping instead').length;
      if (fellBack > 0) throw new Error(`${pair[1]}: ${fellBack} suspend/restore failures: the figures would be cold starts`);
      samples.push(sample);
    }
    const goals: Goal[] = tiers.map((tier) => {
      const oneSecond = samples.find((s) => s.tier === tier && s.startMs === 1000)!;
      const ratio = median(oneSecond.suspendMs) / median(oneSecond.coldMs);
      return { name: `wake from suspend vs cold wake, 1 s app, ${tier} tier`, measured: fmt(ratio), goal: '<= 0.5', met: ratio <= 0.5 };
    });
    return { cycles, samples, goals };
  } finally {
    await kernel.close();
    removeTempDir(dir);
  }
}

export function formatSuspend(result: SuspendBenchResult): string {
  const rows = result.samples.map((s) => {
    const cold = median(s.coldMs);
    const susp = median(s.suspendMs);
    return [s.tier, `${s.startMs} ms app`, `${fmt(cold)} ms`, `${fmt(susp)} ms`, fmt(susp / cold), `${fmt(median(s.dumpMs))} ms`, `${fmt(median(s.restoreMs))} ms`, `${fmt(s.imageBytes / 1048576)} MiB`];
  });
  return `Suspend (CRIU) vs cold wake, medians of ${result.cycles} interleaved cycles\n${table(['tier', 'app', 'cold wake', 'suspend wake', 'ratio', 'dump', 'restore (spawn)', 'image'], rows)}`;
}

if (isMain(import.meta.url)) {
  const result = await runSuspendBench();
  process.stdout.write(`\n${formatSuspend(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'}  ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
