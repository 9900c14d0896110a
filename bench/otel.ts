/**
 * Tracing benchmark (issue 11): proxy throughput, added p50 and proxy CPU per request with tracing on (every
 * request sampled, spans exported over OTLP/HTTP as protobuf, the default, to a real receiver on loopback) against
 * the same server with tracing off, in the same run. The receiver (test/otlp-receiver.ts, in a process of its
 * own) decodes every export and counts its spans: every field of every span read and checked (wire types,
 * lengths, UTF-8, id sizes) as a collector's protobuf decoder does, without building JS objects for them
 * (test/otlp-proto.ts countOtlpProto; BENCH_OTEL_DECODE=spans builds the objects the e2e tests read, about
 * 3 us of CPU per span against 0.8). The figure is spans exported and received. A collector normally runs on
 * another machine; here it decodes on the same two cores as wrk, the backend and the proxy, so its CPU per
 * traced request is printed too. A third server exports to a collector that accepts and never
 * answers: requests must not slow down, and its memory must stay bounded (the batch queue drops past 8,192).
 *
 *   node --import tsx bench/otel.ts
 *
 * Three `ten serve` processes, each with its own bare node:http backend (bench/fixtures/hello.mjs) as its one
 * instance; wrk -t1 -c{connections} and -c1, rounds interleaved with the order rotated, the median of the
 * per-round ratios reported. Env: BENCH_ROUNDS (6), BENCH_SECONDS (2), BENCH_CONNECTIONS (32).
 *
 * Then, because wrk ratios on a shared 2-core host swing with whatever else runs, tracing's own cost measured
 * in isolation: the otel plugin's hook calls for one proxied request (upstreamHeaders, then request), in a
 * loop in this process, against a receiver in another process; main-thread CPU per request with the spans
 * exported (and the CPU of all this process's threads: the export runs on a thread of its own), with a
 * collector that never answers (made, then dropped by the full queue), and without tracing.
 */
import { fork } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { InstanceView, ProxyExchange } from '../core/types.ts';
import { batchOptions } from '../plugins/otel/batch.ts';
import { resolveTracing } from '../plugins/otel/options.ts';
import { startTracing } from '../plugins/otel/tracing.ts';
import {
  BENCH_DIR,
  type Goal,
  MB,
  type TenServe,
  type WrkResult,
  cpuMicros,
  cpuMicrosOf,
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

/**
 * On-CPU time of a process's main thread, µs, from its schedstat (nanoseconds: /proc's stat counts in 10 ms
 * ticks, 0.5 µs a request over 20,000 requests, as large as the differences measured here).
 */
function mainThreadCpuMicros(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'latin1').split(' ', 1)[0]) / 1000;
  } catch {
    return 0;
  }
}

/**
 * On-CPU time of all of a process's threads, µs (schedstat): the main thread and V8's GC helpers (and any thread
 * a change to the otel plugin adds: main-thread CPU alone would leave its cost out).
 */
function threadsCpuMicros(pid: number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'latin1').split(' ', 1)[0]) / 1000;
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return total;
}

export const OTEL_TARGETS = ['off', 'on', 'hanging'] as const;
export type OtelTarget = (typeof OTEL_TARGETS)[number];
const HOST = 'bench.hello.localhost';
const HELLO_APP = path.join(BENCH_DIR, 'fixtures', 'hello.mjs');

export interface OtelSample extends WrkResult {
  /** User + system CPU of the ten serve process per request, µs. */
  proxyCpuUsPerReq: number;
  /** The same, of its main thread alone (the event loop that proxies, and where spans are encoded and sent). */
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
  /**
   * Main-thread CPU tracing adds per request, µs (on minus off): loaded (c32), and with one connection (c1: one
   * request per event-loop turn whatever the throughput, so less swayed by how much each turn batches).
   */
  addedMainUs: number;
  addedMainUsSingle: number;
  /** p50 on minus p50 off, ms: loaded, and with one connection. */
  addedP50Ms: number;
  addedP50MsSingle: number;
  hangingAddedP50Ms: number;
}

/** Main-thread CPU per request of the otel plugin's hook calls alone (µs; medians of rounds, with their range). */
export interface OtelIsolated {
  requestsPerRound: number;
  rounds: number;
  /** Spans made and exported as OTLP protobuf to a receiver in another process: main thread, and all threads. */
  exportedUs: number;
  exportedRange: [number, number];
  exportedAllThreadsUs: number;
  /** Spans made, then dropped: the collector never answers and the queue is full. */
  hangingUs: number;
  hangingRange: [number, number];
  /** Spans the receiver decoded per traced request of the exported rounds (2 expected). */
  spansPerRequest: number;
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
  /** CPU of the receiver's process per traced request, µs (decoding two spans: on this host it shares the cores). */
  receiverCpuUsPerReq: number;
  /** RSS of each server after the rounds, MB. */
  rssMb: Record<OtelTarget, number>;
  isolated: OtelIsolated;
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
    addedMainUs: on.proxyMainCpuUsPerReq - off.proxyMainCpuUsPerReq,
    addedMainUsSingle: round.single.on.proxyMainCpuUsPerReq - round.single.off.proxyMainCpuUsPerReq,
    addedP50Ms: on.p50Ms - off.p50Ms,
    addedP50MsSingle: round.single.on.p50Ms - round.single.off.p50Ms,
    hangingAddedP50Ms: hanging.p50Ms - off.p50Ms,
  };
}

/** The receiver in a process of its own (so its decoding is not counted as this process's CPU). */
const RECEIVER_CHILD = `
const { startOtlpReceiver } = await import(${JSON.stringify(new URL('../test/otlp-receiver.ts', import.meta.url).href)});
const receiver = await startOtlpReceiver({ answer: process.env.ANSWER, keep: false, decode: process.env.DECODE });
process.send(receiver.url);
process.on('message', () => process.send({ count: receiver.count, posts: receiver.posts, rejected: receiver.rejected }));
`;

interface ChildReceiver {
  url: string;
  pid: number;
  /** Spans decoded so far. */
  count(): Promise<number>;
  stats(): Promise<{ count: number; posts: number; rejected: number }>;
  close(): void;
}

/** How the receiver decodes: 'walk' (every field read and checked, no objects built) unless BENCH_OTEL_DECODE=spans. */
const DECODE = process.env.BENCH_OTEL_DECODE === 'spans' ? 'spans' : 'walk';

export async function childReceiver(answer: 'ok' | 'never'): Promise<ChildReceiver> {
  const child = fork('--input-type=module', ['-e', RECEIVER_CHILD], { execArgv: ['--import', 'tsx'], env: { ...process.env, ANSWER: answer, DECODE }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the receiver process did not start within 20 s')), 20_000);
    child.once('message', (message) => {
      clearTimeout(timer);
      resolve(String(message));
    });
    child.once('exit', (code) => reject(new Error(`the receiver process exited (${code})`)));
  });
  const stats = (): Promise<{ count: number; posts: number; rejected: number }> =>
    new Promise((resolve) => {
      child.once('message', (message) => resolve(message as { count: number; posts: number; rejected: number }));
      child.send('stats');
    });
  return {
    url,
    pid: child.pid!,
    stats,
    count: async () => (await stats()).count,
    close: () => child.kill('SIGKILL'),
  };
}

/**
 * The otel plugin's calls for one proxied request, as the proxy makes them (upstreamHeaders with the head about
 * to be sent, then request), `count` times; every 256 requests the loop lets the event loop run and, when
 * `pace`, waits (at most 0.5 s) until the export queue is back under two batches, as a server does between
 * requests, so the export keeps up instead of dropping. Main-thread CPU per request, µs.
 */
/** Spans each tracing made so far (what its counters will have settled once the queue is empty). */
const PACE_SPANS = 2 * batchOptions().batchSize;
const spansMade = new Map<ReturnType<typeof startTracing>, number>();

export async function tracedLoop(tracing: ReturnType<typeof startTracing> | null, count: number, pace: boolean): Promise<number> {
  return (await tracedLoopCpu(tracing, count, pace)).main;
}

/** tracedLoop's CPU per request, of the main thread and of all this process's threads. */
export async function tracedLoopCpu(tracing: ReturnType<typeof startTracing> | null, count: number, pace: boolean): Promise<{ main: number; all: number }> {
  const instance = {
    service: 'hello',
    id: 'bench',
    key: 'hello:bench',
    state: 'running',
    tier: 'process',
    handle: { address: { host: '127.0.0.1', port: 40000 }, inProcess: false },
  } as unknown as InstanceView;
  const heads: Record<string, string> = { host: HOST, 'user-agent': 'wrk' };
  const header = (name: string): string | undefined => heads[name];
  const before = mainThreadCpuMicros(process.pid);
  const allBefore = threadsCpuMicros(process.pid);
  for (let i = 0; i < count; i++) {
    const receivedAt = performance.now();
    const exchange = {
      method: 'GET',
      target: '/',
      hostname: HOST,
      remoteAddress: '127.0.0.1',
      upgrade: false,
      receivedAt,
      startedAt: receivedAt,
      wakeMs: 0,
      header,
    } as unknown as ProxyExchange;
    const headers = ['host', HOST, 'user-agent', 'wrk', 'x-forwarded-for', '127.0.0.1'];
    if (tracing !== null) {
      tracing.spans.upstream({ exchange, instance, headers });
      tracing.spans.request({ exchange, instance, method: 'GET', status: 200, durationMs: 0.1, wakeMs: 0 });
      spansMade.set(tracing, (spansMade.get(tracing) ?? 0) + 2);
    }
    if ((i & 255) === 255) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (pace && tracing !== null) {
        const c = tracing.counters;
        const until = Date.now() + 500;
        while (spansMade.get(tracing)! - c.exported - c.failed - c.dropped > PACE_SPANS && Date.now() < until) await sleep(1);
      }
    }
  }
  return { main: (mainThreadCpuMicros(process.pid) - before) / count, all: (threadsCpuMicros(process.pid) - allBefore) / count };
}

export async function runOtelIsolated(options: { rounds?: number; requests?: number } = {}): Promise<OtelIsolated> {
  const rounds = options.rounds ?? 7;
  const requests = options.requests ?? 20_000;
  const receiver = await childReceiver('ok');
  const hanging = await childReceiver('never');
  const onError = (): void => {};
  const exporting = startTracing(resolveTracing({ endpoint: receiver.url, sampler: 'always_on' }, {})!, '0.0.0', onError);
  const toHanging = startTracing(resolveTracing({ endpoint: hanging.url, sampler: 'always_on' }, {})!, '0.0.0', onError);
  try {
    const exported: number[] = [];
    const exportedAll: number[] = [];
    const dropped: number[] = [];
    let tracedRequests = 0;
    await tracedLoop(exporting, 2_000, true);
    await tracedLoop(toHanging, 2_000, false);
    const before = await receiver.count();
    for (let r = 0; r < rounds; r++) {
      const base = await tracedLoopCpu(null, requests, false);
      const traced = await tracedLoopCpu(exporting, requests, true);
      exported.push(traced.main - base.main);
      exportedAll.push(traced.all - base.all);
      tracedRequests += requests;
      dropped.push((await tracedLoop(toHanging, requests, false)) - base.main);
    }
    await exporting.shutdown();
    const received = (await receiver.count()) - before;
    return {
      requestsPerRound: requests,
      rounds,
      exportedUs: median(exported),
      exportedRange: [Math.min(...exported), Math.max(...exported)],
      exportedAllThreadsUs: median(exportedAll),
      hangingUs: median(dropped),
      hangingRange: [Math.min(...dropped), Math.max(...dropped)],
      spansPerRequest: received / tracedRequests,
    };
  } finally {
    await Promise.race([Promise.all([exporting.shutdown(), toHanging.shutdown()]), sleep(6_000)]);
    receiver.close();
    hanging.close();
  }
}

export async function runOtelBench(options: { rounds?: number; seconds?: number; connections?: number; log?: (line: string) => void } = {}): Promise<OtelBenchResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const roundsWanted = options.rounds ?? Number(process.env.BENCH_ROUNDS ?? 6);
  const seconds = options.seconds ?? Number(process.env.BENCH_SECONDS ?? 2);
  const connections = options.connections ?? Number(process.env.BENCH_CONNECTIONS ?? 32);
  const tools = requireTools();
  const dir = makeTempDir('otel');
  // The receiver, in a process of its own, decodes every export and counts its spans, keeping nothing: every
  // field of every span read and checked without building objects (countOtlpProto), or with
  // BENCH_OTEL_DECODE=spans into the objects the e2e tests read. Its CPU per traced request is reported.
  const receiver = await childReceiver('ok');
  const hangingCollector = await childReceiver('never');
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
    log(`otel: tracing off / on (sampler always_on, OTLP/HTTP protobuf to ${receiver.url}) / on to a hanging collector; wrk -t1 -c${connections} -d${seconds}s, ${roundsWanted} rounds`);
    for (const target of OTEL_TARGETS) await wrk(target, connections, 1);
    const statsBefore = await receiver.stats();
    const receiverCpuBefore = cpuMicros(receiver.pid);
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
    // The last batch leaves within the exporter's 1 s delay: wait until the count stops moving (bounded).
    await sleep(1_500);
    for (let last = -1, until = Date.now() + 15_000; Date.now() < until; await sleep(1_000)) {
      const now = await receiver.count();
      if (now === last) break;
      last = now;
    }
    const rssMb = Object.fromEntries(OTEL_TARGETS.map((t) => [t, rssBytes(servers[t]!.child.pid) / MB])) as Record<OtelTarget, number>;
    const perRound = rounds.map(ratiosOf);
    const keys = Object.keys(perRound[0]!) as Array<keyof OtelRatios>;
    const ratios = Object.fromEntries(keys.map((k) => [k, median(perRound.map((x) => x[k]))])) as unknown as OtelRatios;
    const statsAfter = await receiver.stats();
    const spansReceived = statsAfter.count - statsBefore.count;
    const receiverCpuUsPerReq = (cpuMicros(receiver.pid) - receiverCpuBefore) / Math.max(1, tracedRequests);
    if (statsAfter.rejected > 0) warnings.push(`the receiver could not decode ${statsAfter.rejected} exports`);
    log('otel: the plugin\'s hook calls alone, main-thread CPU per request (exported / hanging collector / none)');
    const isolated = await runOtelIsolated();
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
      exportPosts: statsAfter.posts - statsBefore.posts,
      receiverCpuUsPerReq,
      rssMb,
      isolated,
      goals,
      warnings,
    };
  } finally {
    for (const target of OTEL_TARGETS) await servers[target]?.stop();
    receiver.close();
    hangingCollector.close();
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
    fmt(r.addedMainUs, 1),
    fmt(r.addedMainUsSingle, 1),
    fmt(r.addedP50Ms),
    fmt(r.addedP50MsSingle, 3),
    fmt(r.hangingVsOffRps),
    fmt(r.hangingAddedP50Ms),
  ];
  return [
    `== otel: tracing off / on (100% sampled, OTLP/HTTP to a loopback receiver) / on to a hanging collector; wrk -t1 -c${result.connections} -d${result.seconds}s (and -c1 -d1s) ==`,
    table(['round', 'tracing', `req/s c${result.connections}`, 'p50 ms', 'p99 ms', 'proxy CPU us/req', 'main thread', 'req/s c1', 'p50 ms c1'], rows),
    '',
    'ratios within each round (on/off; +main us = main-thread CPU per request on minus off, µs, at c32 and c1; +p50 = p50 on minus p50 off, ms):',
    table(
      ['round', 'on/off rps', 'on/off cpu', 'on/off main cpu', '+main us', '+main us c1', '+p50', '+p50 c1', 'hanging/off rps', 'hanging +p50'],
      [...result.perRound.map((r, i) => ratioRow(String(i + 1), r)), ratioRow('median', result.ratios)],
    ),
    '',
    `spans decoded by the receiver: ${fmtInt(result.spansReceived)} for ${fmtInt(result.tracedRequests)} traced requests ` +
      `(${fmt(result.spansReceived / Math.max(1, result.tracedRequests))} per request; 2 expected, fewer when the bounded queue dropped some), ${fmtInt(result.exportPosts)} export POSTs; receiver CPU ${fmt(result.receiverCpuUsPerReq, 1)} us per traced request`,
    `ten serve RSS after the rounds: off ${fmt(result.rssMb.off, 1)} MB, on ${fmt(result.rssMb.on, 1)} MB, hanging collector ${fmt(result.rssMb.hanging, 1)} MB`,
    '',
    `isolated (the otel plugin's calls for one request in a loop, ${result.isolated.rounds} rounds of ${fmtInt(result.isolated.requestsPerRound)}, receiver in another process), main-thread CPU added per request:`,
    `  spans exported as OTLP protobuf: ${fmt(result.isolated.exportedUs, 1)} us (${fmt(result.isolated.exportedRange[0], 1)} to ${fmt(result.isolated.exportedRange[1], 1)}; ${fmt(result.isolated.spansPerRequest)} spans decoded per request); all threads (GC helpers) ${fmt(result.isolated.exportedAllThreadsUs, 1)} us`,
    `  collector never answers (spans made, then dropped): ${fmt(result.isolated.hangingUs, 1)} us (${fmt(result.isolated.hangingRange[0], 1)} to ${fmt(result.isolated.hangingRange[1], 1)})`,
    ...result.warnings.map((w) => `WARNING: ${w}`),
  ].join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runOtelBench();
  process.stdout.write(`\n${formatOtel(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'} ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
