/**
 * Tenant metrics benchmark (issue 11): how long Tenement's own GET /metrics takes, and how late the event loop
 * runs, while hostile tenants are scraped (one serving 100,000 series, one that never answers, one a 50 MB body,
 * one garbage), against the same server with well-behaved tenants exposing as many series (one of them 1,000, as
 * many as the flood keeps), in the same run. Rounds alternate: the
 * hostile instances are spawned, measured, removed, the baseline measured again; the median of per-round ratios
 * is printed. Also the time to parse a 100,000-series body on its own.
 *
 *   node --import tsx bench/tenant-metrics.ts
 *
 * Env: BENCH_ROUNDS (3), BENCH_REQUESTS (40 per measurement). Interval 200 ms, so the flood is parsed about five
 * times a second while /metrics is read.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import path from 'node:path';
import { createTestKernel, type TestKernel } from '../core/test-kernel.ts';
import metrics from '../plugins/metrics/index.ts';
import tenantMetrics from '../plugins/tenant-metrics/index.ts';
import { DEFAULT_LIMITS, parseExpositionAsync } from '../plugins/tenant-metrics/parse.ts';
import { FIXTURES, request, servePlugins } from '../test/helpers.ts';
import { fmt, isMain, makeTempDir, median, removeTempDir, sleep } from './lib.ts';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 40);
const HOSTILE = ['flood', 'hang', 'huge', 'garbage'];

interface Figures {
  p50Ms: number;
  p99LagMs: number;
}

async function measure(kernel: TestKernel): Promise<Figures> {
  const lag = monitorEventLoopDelay({ resolution: 5 });
  lag.enable();
  const times: number[] = [];
  for (let i = 0; i < REQUESTS; i++) {
    const started = performance.now();
    const reply = await request(kernel, 'localhost', '/metrics', { timeoutMs: 30_000 });
    if (reply.status !== 200) throw new Error(`/metrics answered ${reply.status}`);
    times.push(performance.now() - started);
    await sleep(25);
  }
  lag.disable();
  return { p50Ms: median(times), p99LagMs: lag.percentile(99) / 1e6 };
}

export async function runTenantMetricsBench(): Promise<Record<string, number>> {
  const dataDir = makeTempDir('tenement-bench-tenant-metrics-');
  const kernel = await createTestKernel({
    plugins: [...servePlugins, metrics, tenantMetrics],
    config: {
      settings: { dataDir },
      services: {
        app: {
          command: `node ${path.join(FIXTURES, 'metrics-app.mjs')}`,
          health: '/health',
          metrics: { path: '/metrics', interval: 200, timeout: '10m', maxSeries: 1000 },
        },
      },
      instances: { app: ['alice', 'many'] },
    },
  });
  try {
    const waitRunning = async () => {
      const deadline = Date.now() + 60_000;
      while (!kernel.instances.list().every((i) => i.state === 'running')) {
        if (Date.now() > deadline) throw new Error('instances did not start');
        await sleep(50);
      }
    };
    await waitRunning();
    const ratios = { p50: [] as number[], lag: [] as number[] };
    const rows: string[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await sleep(500);
      const base = await measure(kernel);
      for (const id of HOSTILE) await kernel.spawnInstance('app', id);
      await waitRunning();
      await sleep(1_000); // a few scrapes of each: the flood parsed, the hang pending, the 50 MB cut
      const hostile = await measure(kernel);
      for (const id of HOSTILE) await kernel.removeInstance(kernel.instances.get('app', id)!);
      ratios.p50.push(hostile.p50Ms / base.p50Ms);
      ratios.lag.push(hostile.p99LagMs / Math.max(base.p99LagMs, 0.001));
      rows.push(`round ${round + 1}: /metrics p50 ${fmt(base.p50Ms)} ms -> ${fmt(hostile.p50Ms)} ms, event loop p99 lag ${fmt(base.p99LagMs)} ms -> ${fmt(hostile.p99LagMs)} ms`);
    }
    const lines = ['# HELP flood One of very many.', '# TYPE flood gauge'];
    for (let i = 0; i < 100_000; i++) lines.push(`flood{i="${i}"} ${i}`);
    const body = Buffer.from(`${lines.join('\n')}\n`);
    const started = performance.now();
    await parseExpositionAsync(body, DEFAULT_LIMITS);
    const parseMs = performance.now() - started;

    for (const row of rows) console.log(row);
    const result = { metricsP50Ratio: median(ratios.p50), eventLoopP99LagRatio: median(ratios.lag), parse100kMs: parseMs, bodyMB: body.length / 1e6 };
    console.log(`/metrics p50 with hostile tenants vs without: ${fmt(result.metricsP50Ratio)}x (median of ${ROUNDS} rounds)`);
    console.log(`event loop p99 lag with hostile tenants vs without: ${fmt(result.eventLoopP99LagRatio)}x`);
    console.log(`parsing a 100,000-series body (${fmt(result.bodyMB)} MB, 1,000 kept): ${fmt(parseMs)} ms, in slices of 2,000 lines`);
    return result;
  } finally {
    await kernel.close();
    removeTempDir(dataDir);
  }
}

if (isMain(import.meta.url)) await runTenantMetricsBench();
