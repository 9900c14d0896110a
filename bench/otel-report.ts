/** What the tracing benchmark (bench/otel.ts) measures: its targets, samples and ratios, and the printed tables. */
import { type Goal, type WrkResult, fmt, fmtInt, table } from './lib.ts';

export const OTEL_TARGETS = ['off', 'on', 'hanging'] as const;
export type OtelTarget = (typeof OTEL_TARGETS)[number];
export const HOST = 'bench.hello.localhost';

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

export function ratiosOf(round: OtelRound): OtelRatios {
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

