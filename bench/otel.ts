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
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  BENCH_DIR,
  type Goal,
  MB,
  type TenServe,
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
  waitForOk,
} from './lib.ts';
import { runOtelIsolated } from './otel-isolated.ts';
import { childReceiver } from './otel-receiver.ts';
import { HOST, OTEL_TARGETS, formatOtel, ratiosOf, type OtelBenchResult, type OtelRatios, type OtelRound, type OtelSample, type OtelTarget } from './otel-report.ts';
import { mainThreadCpuMicros } from './schedstat.ts';

export { runOtelIsolated, tracedLoop, tracedLoopCpu } from './otel-isolated.ts';
export { childReceiver } from './otel-receiver.ts';
export { OTEL_TARGETS, formatOtel } from './otel-report.ts';
export type { OtelBenchResult, OtelIsolated, OtelRatios, OtelRound, OtelSample, OtelTarget } from './otel-report.ts';

const HELLO_APP = path.join(BENCH_DIR, 'fixtures', 'hello.mjs');

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

if (isMain(import.meta.url)) {
  const result = await runOtelBench();
  process.stdout.write(`\n${formatOtel(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'} ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
