/**
 * Tracing benchmark (issue 11): proxy throughput, added p50 and proxy CPU per request with tracing on (every
 * request sampled, spans exported over OTLP/HTTP to a real receiver on loopback that decodes them) against the
 * same server with tracing off, in the same run. A third server exports to a collector that accepts and never
 * answers: requests must not slow down, and its memory must stay bounded (the batch queue drops past 2,048).
 *
 *   node --import tsx bench/otel.ts
 *
 * Three `ten serve` processes, each with its own bare node:http backend (bench/fixtures/hello.mjs) as its one
 * instance; wrk -t1 -c{connections} and -c1, rounds interleaved with the order rotated, the median of the
 * per-round ratios reported. Env: BENCH_ROUNDS (6), BENCH_SECONDS (2), BENCH_CONNECTIONS (32).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { startOtlpReceiver } from '../test/otlp-receiver.ts';
import {
  BENCH_DIR,
  type Goal,
  MB,
  type TenServe,
  type WrkResult,
  cpuMicrosOf,
  mainThreadCpuMicros,
  fmt,
  fmtInt,
  freePort,
  isMain,
  makeTempDir,
  median,
  removeTempDir,
  requireTools,
  rssBytes,
  runWrk,
  sleep,
  startTenServe,
  table,
  waitForOk,
} from './lib.ts';

export const OTEL_TARGETS = ['off', 'on', 'hanging'] as const;
export type OtelTarget = (typeof OTEL_TARGETS)[number];
const HOST = 'bench.hello.localhost';
const HELLO_APP = path.join(BENCH_DIR, 'fixtures', 'hello.mjs');

export interface OtelSample extends WrkResult {
  /** User + system CPU of the ten serve process per request, µs. */
  proxyCpuUsPerReq: number;
  /** The same, of its main thread alone (the event loop that proxies; trace export runs in a worker thread). */
  proxyMainCpuUsPerReq: number;
}

export interface OtelRound {
  loaded: Record<OtelTarget, OtelSample>;
  single: Record<OtelTarget, OtelSample>;
}

export interface OtelRatios {
  /** Throughput with tracing on / off (the goal: >= 0.85). */
  onVsOffRps: number;
  hangingVsOffRps: number;
  /** Proxy CPU per request, on / off. */
  onVsOffCpu: number;
  /** Main-thread CPU per request, on / off. */
  onVsOffMainCpu: number;
  /** p50 on minus p50 off, ms: loaded, and with one connection. */
  addedP50Ms: number;
  addedP50MsSingle: number;
  hangingAddedP50Ms: number;
}

export interface OtelBenchResult {
  connections: number;
  seconds: number;
  rounds: OtelRound[];
  perRound: OtelRatios[];
  ratios: OtelRatios;
  /** Requests served by the traced server, spans the receiver decoded, and their ratio (2 per request: SERVER + CLIENT). */
  tracedRequests: number;
  spansReceived: number;
  exportPosts: number;
  /** RSS of each server after the rounds, MB. */
  rssMb: Record<OtelTarget, number>;
  goals: Goal[];
  warnings: string[];
}

function writeConfig(dir: string, name: OtelTarget, backendPort: number, otel: object | null): string {
  const file = path.join(dir, `${name}.config.json`);
  const config = {
    settings: {
      domain: 'localhost',
      port: 0,
      listen: '127.0.0.1',
      dataDir: path.join(dir, `data-${name}`),
      portRange: { from: backendPort, to: backendPort },
      healthInterval: '60s',
      ...(otel ? { otel } : {}),
    },
    services: { hello: { command: process.execPath, args: [HELLO_APP], health: '/health', idleTimeout: false } },
    instances: { hello: ['bench'] },
  };
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

function ratiosOf(round: OtelRound): OtelRatios {
  const { off, on, hanging } = round.loaded;
  return {
    onVsOffRps: on.requestsPerSec / off.requestsPerSec,
    hangingVsOffRps: hanging.requestsPerSec / off.requestsPerSec,
    onVsOffCpu: on.proxyCpuUsPerReq / off.proxyCpuUsPerReq,
    onVsOffMainCpu: on.proxyMainCpuUsPerReq / off.proxyMainCpuUsPerReq,
    addedP50Ms: on.p50Ms - off.p50Ms,
    addedP50MsSingle: round.single.on.p50Ms - round.single.off.p50Ms,
    hangingAddedP50Ms: hanging.p50Ms - off.p50Ms,
  };
}

export async function runOtelBench(options: { rounds?: number; seconds?: number; connections?: number; log?: (line: string) => void } = {}): Promise<OtelBenchResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const roundsWanted = options.rounds ?? Number(process.env.BENCH_ROUNDS ?? 6);
  const seconds = options.seconds ?? Number(process.env.BENCH_SECONDS ?? 2);
  const connections = options.connections ?? Number(process.env.BENCH_CONNECTIONS ?? 32);
  const tools = requireTools();
  const dir = makeTempDir('otel');
  // The receiver decodes every export (JSON.parse and a walk of every span) without keeping the spans.
  const receiver = await startOtlpReceiver({ keep: false });
  const hangingCollector = await startOtlpReceiver({ answer: 'never', keep: false });
  const servers: Partial<Record<OtelTarget, TenServe>> = {};
  const warnings: string[] = [];
  try {
    const settings: Record<OtelTarget, object | null> = {
      off: null,
      on: { endpoint: receiver.url, sampler: 'always_on' },
      hanging: { endpoint: hangingCollector.url, sampler: 'always_on' },
    };
    for (const target of OTEL_TARGETS) {
      const backendPort = await freePort();
      const config = writeConfig(dir, target, backendPort, settings[target]);
      const serve = await startTenServe({ config, dataDir: path.join(dir, `data-${target}`) });
      servers[target] = serve;
      await waitForOk(serve.port, HOST, 20_000, `${HOST} through the '${target}' ten serve`);
    }
    const wrk = async (target: OtelTarget, conns: number, secs: number): Promise<OtelSample> => {
      const serve = servers[target]!;
      const pid = serve.child.pid;
      const before = cpuMicrosOf([pid]);
      const mainBefore = mainThreadCpuMicros(pid);
      const result = await runWrk({ binary: tools.wrk, port: serve.port, host: HOST, threads: 1, connections: conns, seconds: secs });
      const requests = Math.max(1, result.requests);
      return { ...result, proxyCpuUsPerReq: (cpuMicrosOf([pid]) - before) / requests, proxyMainCpuUsPerReq: (mainThreadCpuMicros(pid) - mainBefore) / requests };
    };
    log(`otel: tracing off / on (sampler always_on, OTLP/HTTP JSON to ${receiver.url}) / on to a hanging collector; wrk -t1 -c${connections} -d${seconds}s, ${roundsWanted} rounds`);
    for (const target of OTEL_TARGETS) await wrk(target, connections, 1);
    const spansBefore = receiver.count;
    let tracedRequests = 0;
    const rounds: OtelRound[] = [];
    for (let r = 0; r < roundsWanted; r++) {
      const order = OTEL_TARGETS.map((_, i) => OTEL_TARGETS[(i + r) % OTEL_TARGETS.length]!);
      const loaded = {} as Record<OtelTarget, OtelSample>;
      const single = {} as Record<OtelTarget, OtelSample>;
      for (const target of order) loaded[target] = await wrk(target, connections, seconds);
      for (const target of order) single[target] = await wrk(target, 1, 1);
      tracedRequests += loaded.on.requests + single.on.requests;
      rounds.push({ loaded, single });
      for (const target of OTEL_TARGETS) {
        const s = loaded[target];
        log(
          `  round ${r + 1} ${target.padEnd(7)} ${fmtInt(s.requestsPerSec).padStart(7)} req/s  p50 ${fmt(s.p50Ms)} ms  p99 ${fmt(s.p99Ms)} ms  proxy CPU ${fmt(s.proxyCpuUsPerReq, 1)} us/req (main ${fmt(s.proxyMainCpuUsPerReq, 1)})` +
            `   | c1: ${fmtInt(single[target].requestsPerSec)} req/s p50 ${fmt(single[target].p50Ms, 3)} ms`,
        );
        for (const res of [s, single[target]]) {
          if (res.non2xx > 0 || res.socketErrors > 0) warnings.push(`round ${r + 1} ${target}: ${res.non2xx} non-2xx, ${res.socketErrors} socket errors`);
        }
      }
    }
    // The last batch leaves within the exporter's 1 s delay.
    await sleep(2_500);
    const rssMb = Object.fromEntries(OTEL_TARGETS.map((t) => [t, rssBytes(servers[t]!.child.pid) / MB])) as Record<OtelTarget, number>;
    const perRound = rounds.map(ratiosOf);
    const keys = Object.keys(perRound[0]!) as Array<keyof OtelRatios>;
    const ratios = Object.fromEntries(keys.map((k) => [k, median(perRound.map((x) => x[k]))])) as unknown as OtelRatios;
    const spansReceived = receiver.count - spansBefore;
    const goals: Goal[] = [
      { name: 'proxy throughput, tracing on (100%) vs off', measured: `${fmt(ratios.onVsOffRps)}x`, goal: '>= 0.85x', met: ratios.onVsOffRps >= 0.85 },
      {
        name: 'throughput with a hanging collector vs off',
        measured: `${fmt(ratios.hangingVsOffRps)}x`,
        goal: 'not blocked (>= 0.85x)',
        met: ratios.hangingVsOffRps >= 0.85,
      },
    ];
    return {
      connections,
      seconds,
      rounds,
      perRound,
      ratios,
      tracedRequests,
      spansReceived,
      exportPosts: receiver.posts,
      rssMb,
      goals,
      warnings,
    };
  } finally {
    for (const target of OTEL_TARGETS) await servers[target]?.stop();
    await receiver.close();
    await hangingCollector.close();
    removeTempDir(dir);
  }
}

export function formatOtel(result: OtelBenchResult): string {
  const rows: string[][] = [];
  result.rounds.forEach((round, i) => {
    for (const target of OTEL_TARGETS) {
      const s = round.loaded[target];
      rows.push([String(i + 1), target, fmtInt(s.requestsPerSec), fmt(s.p50Ms), fmt(s.p99Ms), fmt(s.proxyCpuUsPerReq, 1), fmt(s.proxyMainCpuUsPerReq, 1), fmtInt(round.single[target].requestsPerSec), fmt(round.single[target].p50Ms, 3)]);
    }
  });
  const ratioRow = (label: string, r: OtelRatios): string[] => [
    label,
    fmt(r.onVsOffRps),
    fmt(r.onVsOffCpu),
    fmt(r.onVsOffMainCpu),
    fmt(r.addedP50Ms),
    fmt(r.addedP50MsSingle, 3),
    fmt(r.hangingVsOffRps),
    fmt(r.hangingAddedP50Ms),
  ];
  return [
    `== otel: tracing off / on (100% sampled, OTLP/HTTP to a loopback receiver) / on to a hanging collector; wrk -t1 -c${result.connections} -d${result.seconds}s (and -c1 -d1s) ==`,
    table(['round', 'tracing', `req/s c${result.connections}`, 'p50 ms', 'p99 ms', 'proxy CPU us/req', 'main thread', 'req/s c1', 'p50 ms c1'], rows),
    '',
    'ratios within each round (on/off; +p50 = p50 on minus p50 off, ms):',
    table(
      ['round', 'on/off rps', 'on/off cpu', 'on/off main cpu', '+p50', '+p50 c1', 'hanging/off rps', 'hanging +p50'],
      [...result.perRound.map((r, i) => ratioRow(String(i + 1), r)), ratioRow('median', result.ratios)],
    ),
    '',
    `spans decoded by the receiver: ${fmtInt(result.spansReceived)} for ${fmtInt(result.tracedRequests)} traced requests ` +
      `(${fmt(result.spansReceived / Math.max(1, result.tracedRequests))} per request; 2 expected, fewer when the bounded queue dropped some), ${fmtInt(result.exportPosts)} export POSTs`,
    `ten serve RSS after the rounds: off ${fmt(result.rssMb.off, 1)} MB, on ${fmt(result.rssMb.on, 1)} MB, hanging collector ${fmt(result.rssMb.hanging, 1)} MB`,
    ...result.warnings.map((w) => `WARNING: ${w}`),
  ].join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runOtelBench();
  process.stdout.write(`\n${formatOtel(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'} ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
