/**
 * Autoscaling benchmark (docs/autoscale.md): a step from 1 to BENCH_AS_CLIENTS (50) concurrent clients on
 * `{service}.{domain}` of a service with `scale` (target 4 in flight per replica, window 6 s, panic 2 s), each
 * request BENCH_AS_SLOW_MS (100) asleep in the instance. Reported: the reaction time (from the step to the first
 * answer of a new replica, and to the moment the step's highest count serves), and the p99 latency over the step's
 * first BENCH_AS_SECONDS (15) against the same step on a pool pre-scaled to ceil(clients / target), as a
 * ratio measured in the same run. In-process kernel (core/boot.ts), closed-loop keep-alive clients on loopback.
 *
 *   node --import tsx bench/autoscale.ts          # or: npm run bench -- autoscale (opt-in)
 */
import http from 'node:http';
import path from 'node:path';
import { bootKernel, type BootedKernel } from '../core/boot.ts';
import autoscale from '../plugins/autoscale/index.ts';
import health from '../plugins/health/index.ts';
import hibernate from '../plugins/hibernate/index.ts';
import router from '../plugins/router/index.ts';
import processRuntime from '../runtimes/process/index.ts';
import { type Goal, ROOT, fmt, fmtInt, isMain, percentile, sleep, table } from './lib.ts';

const LB_APP = path.join(ROOT, 'test', 'fixtures', 'lb-app.mjs');
const CLIENTS = Number(process.env.BENCH_AS_CLIENTS ?? 50);
const SLOW_MS = Number(process.env.BENCH_AS_SLOW_MS ?? 100);
const SECONDS = Number(process.env.BENCH_AS_SECONDS ?? 15);
const TARGET = 4;
const MAX = Math.ceil(CLIENTS / TARGET);

export interface AutoscaleBenchResult {
  clients: number;
  slowMs: number;
  /** Step to the first answer from a replica made for it. */
  firstReplicaMs: number | null;
  /** Step to the highest count of the step serving (weight above 0, running): `replicasReached`. */
  allServingMs: number | null;
  replicasReached: number;
  autoscaled: { p50Ms: number; p99Ms: number; requests: number; failures: number };
  prescaled: { p50Ms: number; p99Ms: number; requests: number; failures: number };
  /** p99 of the autoscaled step / p99 of the pre-scaled one. */
  p99Ratio: number;
  goals: Goal[];
}

function service(scale: Record<string, unknown>): Record<string, unknown> {
  return {
    command: `node ${LB_APP}`,
    health: '/health',
    lb: 'least-requests',
    idleTimeout: false,
    env: { LB_SLOW: '*', LB_SLOW_MS: String(SLOW_MS) },
    scale: { target: TARGET, window: '6s', panicWindow: '2s', scaleDownDelay: '30s', ...scale },
  };
}

interface Step {
  latencies: number[];
  failures: number;
  firstOther: number | null;
}

/** `clients` closed-loop clients for `seconds`; `first` is the instance serving before the step. */
async function step(kernel: BootedKernel, host: string, clients: number, seconds: number, first: string | null, t0: number): Promise<Step> {
  const { hostname, port } = new URL(kernel.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const result: Step = { latencies: [], failures: 0, firstOther: null };
  const until = t0 + seconds * 1000;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const started = performance.now();
      const req = http.get({ host: hostname, port, path: '/', headers: { host }, agent, timeout: 30_000 }, (res) => {
        res.resume();
        res.on('end', () => {
          result.latencies.push(performance.now() - started);
          if (res.statusCode !== 200) result.failures += 1;
          const who = String(res.headers['x-instance']);
          if (first !== null && result.firstOther === null && res.statusCode === 200 && who !== first) result.firstOther = Date.now() - t0;
          resolve();
        });
      });
      req.on('error', () => {
        result.failures += 1;
        resolve();
      });
    });
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (Date.now() < until) await one();
    }),
  );
  agent.destroy();
  return result;
}

const servingCount = (kernel: BootedKernel, name: string): number =>
  kernel.instances.ofService(name).filter((i) => i.state === 'running' && i.weight > 0).length;

async function waitServing(kernel: BootedKernel, name: string, count: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (servingCount(kernel, name) < count) {
    if (Date.now() > deadline) throw new Error(`${name}: ${servingCount(kernel, name)} of ${count} instances serving after ${timeoutMs} ms`);
    await sleep(50);
  }
}

export async function runAutoscaleBench(): Promise<AutoscaleBenchResult> {
  const kernel = await bootKernel({
    plugins: [processRuntime, router, health, hibernate, autoscale],
    config: {
      settings: { healthInterval: '1h', autoscale: { maxReplicas: 2 * MAX + 2 } },
      services: { auto: service({ min: 1, max: MAX }), pre: service({ min: MAX, max: MAX }) },
    } as never,
    tempPrefix: 'tenement-bench-autoscale-',
  });
  try {
    await waitServing(kernel, 'auto', 1, 60_000);
    await waitServing(kernel, 'pre', MAX, 120_000);
    const first = `auto:${kernel.instances.ofService('auto')[0]!.id}`;
    // One client for a few seconds: the stable window sees a calm service before the step.
    await step(kernel, 'auto.localhost', 1, 4, null, Date.now());
    const t0 = Date.now();
    let allServingMs: number | null = null;
    let reached = 1;
    const watch = setInterval(() => {
      const serving = servingCount(kernel, 'auto');
      // When the highest count of the step was first serving: the reaction's end.
      if (serving > reached) {
        reached = serving;
        allServingMs = Date.now() - t0;
      }
    }, 20);
    const auto = await step(kernel, 'auto.localhost', CLIENTS, SECONDS, first, t0);
    clearInterval(watch);
    const pre = await step(kernel, 'pre.localhost', CLIENTS, SECONDS, null, Date.now());
    const summary = (s: Step) => ({ p50Ms: percentile(s.latencies, 50), p99Ms: percentile(s.latencies, 99), requests: s.latencies.length, failures: s.failures });
    const autoscaled = summary(auto);
    const prescaled = summary(pre);
    const p99Ratio = autoscaled.p99Ms / prescaled.p99Ms;
    return {
      clients: CLIENTS,
      slowMs: SLOW_MS,
      firstReplicaMs: auto.firstOther,
      allServingMs,
      replicasReached: reached,
      autoscaled,
      prescaled,
      p99Ratio,
      goals: [
        { name: `autoscale: requests failed during the step to ${CLIENTS} clients`, measured: `${autoscaled.failures} of ${autoscaled.requests}`, goal: '0', met: autoscaled.failures === 0 },
      ],
    };
  } finally {
    await kernel.close();
  }
}

export function formatAutoscale(r: AutoscaleBenchResult): string {
  return [
    `autoscale: step 1 -> ${r.clients} clients, ${r.slowMs} ms per request, target ${TARGET} in flight per replica (max ${MAX})`,
    table(
      ['', 'value'],
      [
        ['first new replica answers', r.firstReplicaMs === null ? 'never' : `${fmtInt(r.firstReplicaMs)} ms`],
        [`${r.replicasReached} replicas serving (the step's highest)`, r.allServingMs === null ? 'never' : `${fmtInt(r.allServingMs)} ms`],
        ['p50 autoscaled / pre-scaled', `${fmt(r.autoscaled.p50Ms)} / ${fmt(r.prescaled.p50Ms)} ms`],
        ['p99 autoscaled / pre-scaled', `${fmt(r.autoscaled.p99Ms)} / ${fmt(r.prescaled.p99Ms)} ms (ratio ${fmt(r.p99Ratio)})`],
        ['requests (failures)', `${r.autoscaled.requests} (${r.autoscaled.failures}) / ${r.prescaled.requests} (${r.prescaled.failures})`],
      ],
    ),
  ].join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runAutoscaleBench();
  console.log(formatAutoscale(result));
}
