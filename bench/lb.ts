/**
 * Load-balancing benchmark (docs/lb.md): three instances of a service, one of them slowed (it sleeps
 * BENCH_LB_SLOW_MS per request), under `lb: 'weighted'`, `'least-requests'` and `'p2c'` (three services of the
 * same `ten serve`, same instances, same backend). wrk drives each host in turn, interleaved round by round;
 * reported: p50/p99 latency and requests per second of each rule as a ratio against `weighted` in the same
 * round, and the share of requests the slowed instance got (its own count, read from it).
 *
 *   node --import tsx bench/lb.ts          # or: npm run bench -- lb
 *
 * Env: BENCH_ROUNDS (4), BENCH_SECONDS (3), BENCH_CONNECTIONS (16), BENCH_LB_SLOW_MS (200), BENCH_WORKERS (1:
 * settings.proxy.workers, every one accepting from the start (`accept: 'spread'`); each worker balances with its own
 * in-flight counts). Needs wrk (apt-get install -y wrk).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  type Goal,
  ROOT,
  type TenServe,
  type WrkResult,
  findBinary,
  fmt,
  fmtInt,
  fmtPct,
  httpGet,
  isMain,
  makeTempDir,
  median,
  removeTempDir,
  runWrk,
  startTenServe,
  table,
  waitForOk,
} from './lib.ts';

export const LB_RULES = ['weighted', 'least-requests', 'p2c'] as const;
export type LbRule = (typeof LB_RULES)[number];
const SERVICE: Record<LbRule, string> = { weighted: 'w', 'least-requests': 'lr', p2c: 'p' };
const IDS = ['a', 'b', 'slow'] as const;
const LB_APP = path.join(ROOT, 'test', 'fixtures', 'lb-app.mjs');

export interface LbSample extends WrkResult {
  /** Share of this run's requests the slowed instance answered. */
  slowShare: number;
}

export interface LbRound {
  samples: Record<LbRule, LbSample>;
}

export interface LbRatios {
  /** p99 of the rule / p99 of weighted, same round. */
  p2cVsWeightedP99: number;
  leastVsWeightedP99: number;
  /** p90: past the slowed instance's share under p2c and least-requests, inside it under weighted. */
  p2cVsWeightedP90: number;
  leastVsWeightedP90: number;
  p2cVsWeightedP50: number;
  leastVsWeightedP50: number;
  p2cVsWeightedRps: number;
  leastVsWeightedRps: number;
}

export interface LbBenchResult {
  slowMs: number;
  connections: number;
  seconds: number;
  workers: number;
  rounds: LbRound[];
  perRound: LbRatios[];
  /** Median of the per-round ratios. */
  ratios: LbRatios;
  goals: Goal[];
}

export interface LbBenchOptions {
  rounds?: number;
  seconds?: number;
  connections?: number;
  slowMs?: number;
  workers?: number;
  log?: (line: string) => void;
}

const envInt = (name: string, fallback: number): number => {
  const value = Number(process.env[name]);
  return Number.isInteger(value) && value > 0 ? value : fallback;
};

function writeConfig(dir: string, slowMs: number, workers: number): string {
  const file = path.join(dir, 'tenement.config.json');
  const service = (lb: LbRule): Record<string, unknown> => ({
    command: process.execPath,
    args: [LB_APP],
    health: '/health',
    idleTimeout: false,
    lb,
    env: { LB_SLOW: 'slow', LB_SLOW_MS: String(slowMs) },
  });
  const config = {
    settings: { domain: 'localhost', port: 0, listen: '127.0.0.1', dataDir: path.join(dir, 'data'), healthInterval: '60s', proxy: { workers, accept: 'spread' } },
    services: Object.fromEntries(LB_RULES.map((lb) => [SERVICE[lb], service(lb)])),
    instances: Object.fromEntries(LB_RULES.map((lb) => [SERVICE[lb], [...IDS]])),
  };
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

/** Requests each instance of `service` has answered so far (asked of it directly, by its own host). */
async function counts(serve: TenServe, service: string): Promise<Record<(typeof IDS)[number], number>> {
  const entries = await Promise.all(IDS.map(async (id) => [id, Number((await httpGet(serve.port, `${id}.${service}.localhost`, '/count')).body)] as const));
  return Object.fromEntries(entries) as Record<(typeof IDS)[number], number>;
}

function ratios(round: LbRound): LbRatios {
  const { weighted, p2c } = round.samples;
  const least = round.samples['least-requests'];
  return {
    p2cVsWeightedP99: p2c.p99Ms / weighted.p99Ms,
    leastVsWeightedP99: least.p99Ms / weighted.p99Ms,
    p2cVsWeightedP90: p2c.p90Ms / weighted.p90Ms,
    leastVsWeightedP90: least.p90Ms / weighted.p90Ms,
    p2cVsWeightedP50: p2c.p50Ms / weighted.p50Ms,
    leastVsWeightedP50: least.p50Ms / weighted.p50Ms,
    p2cVsWeightedRps: p2c.requestsPerSec / weighted.requestsPerSec,
    leastVsWeightedRps: least.requestsPerSec / weighted.requestsPerSec,
  };
}

export async function runLbBench(options: LbBenchOptions = {}): Promise<LbBenchResult> {
  const wrk = findBinary('wrk');
  if (!wrk) throw new Error('missing wrk (Debian package wrk): install with  apt-get install -y wrk');
  const rounds = options.rounds ?? envInt('BENCH_ROUNDS', 4);
  const seconds = options.seconds ?? envInt('BENCH_SECONDS', 3);
  const connections = options.connections ?? envInt('BENCH_CONNECTIONS', 16);
  const slowMs = options.slowMs ?? envInt('BENCH_LB_SLOW_MS', 200);
  const workers = options.workers ?? envInt('BENCH_WORKERS', 1);
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const dir = makeTempDir('tenement-bench-lb-');
  let serve: TenServe | null = null;
  try {
    serve = await startTenServe({ config: writeConfig(dir, slowMs, workers), dataDir: path.join(dir, 'data') });
    for (const lb of LB_RULES) for (const id of IDS) await waitForOk(serve.port, `${id}.${SERVICE[lb]}.localhost`, 30_000, `${id}.${SERVICE[lb]} through ten serve`);
    log(`lb: 3 instances, one sleeping ${slowMs} ms per request; wrk -c${connections} ${seconds}s per rule, ${rounds} rounds, ${workers} proxy process(es)`);
    const all: LbRound[] = [];
    for (let r = 0; r < rounds; r++) {
      // Each round in a different order, so no rule always runs first (or right after another).
      const order = LB_RULES.map((_, i) => LB_RULES[(i + r) % LB_RULES.length]!);
      const samples = {} as Record<LbRule, LbSample>;
      for (const lb of order) {
        const service = SERVICE[lb];
        const before = await counts(serve, service);
        const result = await runWrk({ binary: wrk, port: serve.port, host: `${service}.localhost`, threads: 1, connections, seconds });
        const after = await counts(serve, service);
        const answered = IDS.reduce((sum, id) => sum + after[id] - before[id], 0);
        samples[lb] = { ...result, slowShare: answered > 0 ? (after.slow - before.slow) / answered : Number.NaN };
        log(`  round ${r + 1} ${lb.padEnd(14)} ${fmtInt(result.requestsPerSec)} req/s  p50 ${fmt(result.p50Ms)} ms  p90 ${fmt(result.p90Ms)} ms  p99 ${fmt(result.p99Ms)} ms  slowed instance ${fmtPct(samples[lb].slowShare)}`);
      }
      all.push({ samples });
    }
    const perRound = all.map(ratios);
    const keys = Object.keys(perRound[0]!) as Array<keyof LbRatios>;
    const medianRatios = Object.fromEntries(keys.map((k) => [k, median(perRound.map((x) => x[k]))])) as unknown as LbRatios;
    const goals: Goal[] = [
      {
        name: 'p99 with one slowed instance, p2c vs weighted (same run)',
        measured: fmt(medianRatios.p2cVsWeightedP99),
        goal: '< 1',
        met: medianRatios.p2cVsWeightedP99 < 1,
      },
    ];
    return { slowMs, connections, seconds, workers, rounds: all, perRound, ratios: medianRatios, goals };
  } finally {
    await serve?.stop();
    removeTempDir(dir);
  }
}

export function formatLb(result: LbBenchResult): string {
  const med = (lb: LbRule, pick: (s: LbSample) => number): number => median(result.rounds.map((round) => pick(round.samples[lb])));
  const ranges = (pick: (r: LbRatios) => number): string => {
    const values = result.perRound.map(pick).sort((a, b) => a - b);
    return `${fmt(values[0]!)}..${fmt(values[values.length - 1]!)}`;
  };
  const rows = LB_RULES.map((lb) => [
    lb,
    `${fmtInt(med(lb, (s) => s.requestsPerSec))}`,
    `${fmt(med(lb, (s) => s.p50Ms))} ms`,
    `${fmt(med(lb, (s) => s.p90Ms))} ms`,
    `${fmt(med(lb, (s) => s.p99Ms))} ms`,
    fmtPct(med(lb, (s) => s.slowShare)),
  ]);
  const r = result.ratios;
  return [
    `== load balancing: one of 3 instances sleeps ${result.slowMs} ms, wrk -c${result.connections}, ${result.workers} proxy process(es), ${result.rounds.length} rounds (medians) ==`,
    table(['lb', 'req/s', 'p50', 'p90', 'p99', 'to slowed'], rows),
    '',
    table(
      ['ratio vs weighted (same round)', 'median', 'range'],
      [
        ['p2c p99', fmt(r.p2cVsWeightedP99), ranges((x) => x.p2cVsWeightedP99)],
        ['least-requests p99', fmt(r.leastVsWeightedP99), ranges((x) => x.leastVsWeightedP99)],
        ['p2c p90', fmt(r.p2cVsWeightedP90), ranges((x) => x.p2cVsWeightedP90)],
        ['least-requests p90', fmt(r.leastVsWeightedP90), ranges((x) => x.leastVsWeightedP90)],
        ['p2c p50', fmt(r.p2cVsWeightedP50), ranges((x) => x.p2cVsWeightedP50)],
        ['least-requests p50', fmt(r.leastVsWeightedP50), ranges((x) => x.leastVsWeightedP50)],
        ['p2c req/s', fmt(r.p2cVsWeightedRps), ranges((x) => x.p2cVsWeightedRps)],
        ['least-requests req/s', fmt(r.leastVsWeightedRps), ranges((x) => x.leastVsWeightedRps)],
      ],
    ),
  ].join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runLbBench();
  process.stdout.write(`\n${formatLb(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'}  ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
