/**
 * The proxy benchmark's report (bench/proxy.ts): its targets and samples, the ratios within each round and their
 * medians, issue 13's goals, and the printed tables.
 */
import { type Goal, type WrkResult, fmt, fmtInt, fmtPct, median, table } from './lib.ts';
import { formatProfile, type ProfileSummary } from './cpuprofile.ts';

/** `nodemin` is bench/fixtures/min-proxy.mjs: the floor of a node:http proxy, for reference. */
/**
 * `tenement` and `nginx` run one proxy process (worker), `tenementN` and `nginxN` run N; `tenementNs` runs N under
 * proxy.accept 'spill' (its workers accept only while the accepting processes are saturated and a core is idle).
 */
export const TARGETS = ['direct', 'tenement', 'tenementN', 'tenementNs', 'nginx', 'nginxN', 'nodemin'] as const;
export type Target = (typeof TARGETS)[number];

/** One wrk run, with the CPU time the proxy's and the backend's processes spent on it. */
export interface Sample extends WrkResult {
  /** CPU (user + system, all processes of the proxy) per request, µs; null for `direct`. */
  proxyCpuUsPerReq: number | null;
  /** The same per process (the kernel's first, then its workers; nginx: master, then workers): how the load fell. */
  proxyCpuSplit: number[];
  backendCpuUsPerReq: number;
}

export interface ProxyRound {
  /** Saturating load: wrk -t1 -c{connections}. */
  loaded: Record<Target, Sample>;
  /** One connection, to see the latency a hop adds without queueing. */
  single: Record<Target, Sample>;
}

export interface ProxyRatios {
  tenementVsDirectRps: number;
  tenementVsNginxRps: number;
  nginxVsDirectRps: number;
  tenementVsNodeminRps: number;
  /** Proxy CPU per request, Tenement / nginx: the machine-independent cost of the hop. */
  tenementVsNginxCpu: number;
  tenementVsNodeminCpu: number;
  /** Tenement p50 minus direct p50, ms, under load. */
  tenementAddedP50Ms: number;
  nginxAddedP50Ms: number;
  tenementAddedP99Ms: number;
  /** Same with one connection. */
  tenementAddedP50MsSingle: number;
  nginxAddedP50MsSingle: number;
  /** The same at N workers each. */
  tenementNVsNginxNRps: number;
  tenementNVsNginxNCpu: number;
  tenementNVsTenementRps: number;
  nginxNVsNginxRps: number;
  tenementNAddedP50Ms: number;
  nginxNAddedP50Ms: number;
  tenementNAddedP50MsSingle: number;
  /** The same for N workers under proxy.accept 'spill'. */
  tenementNsVsNginxNRps: number;
  tenementNsVsNginxNCpu: number;
  tenementNsAddedP50Ms: number;
}

export interface ProxyBenchResult {
  /** N, the proxy processes of `tenementN` and `nginxN`. */
  workers: number;
  connections: number;
  seconds: number;
  rounds: ProxyRound[];
  perRound: ProxyRatios[];
  /** Median of the per-round ratios. */
  ratios: ProxyRatios;
  goals: Goal[];
  warnings: string[];
  profile: ProfileSummary | null;
  profiledRps: number | null;
  /** CPU time ten serve used during the profiled window / the window (all threads; can exceed 1). */
  profiledCpuShare: number | null;
}

export function ratios(round: ProxyRound): ProxyRatios {
  const { direct, tenement, nginx, nodemin } = round.loaded;
  return {
    tenementVsDirectRps: tenement.requestsPerSec / direct.requestsPerSec,
    tenementVsNginxRps: tenement.requestsPerSec / nginx.requestsPerSec,
    nginxVsDirectRps: nginx.requestsPerSec / direct.requestsPerSec,
    tenementVsNodeminRps: tenement.requestsPerSec / nodemin.requestsPerSec,
    tenementVsNginxCpu: (tenement.proxyCpuUsPerReq ?? NaN) / (nginx.proxyCpuUsPerReq ?? NaN),
    tenementVsNodeminCpu: (tenement.proxyCpuUsPerReq ?? NaN) / (nodemin.proxyCpuUsPerReq ?? NaN),
    tenementAddedP50Ms: tenement.p50Ms - direct.p50Ms,
    nginxAddedP50Ms: nginx.p50Ms - direct.p50Ms,
    tenementAddedP99Ms: tenement.p99Ms - direct.p99Ms,
    tenementAddedP50MsSingle: round.single.tenement.p50Ms - round.single.direct.p50Ms,
    nginxAddedP50MsSingle: round.single.nginx.p50Ms - round.single.direct.p50Ms,
    tenementNVsNginxNRps: round.loaded.tenementN.requestsPerSec / round.loaded.nginxN.requestsPerSec,
    tenementNVsNginxNCpu: (round.loaded.tenementN.proxyCpuUsPerReq ?? NaN) / (round.loaded.nginxN.proxyCpuUsPerReq ?? NaN),
    tenementNVsTenementRps: round.loaded.tenementN.requestsPerSec / tenement.requestsPerSec,
    nginxNVsNginxRps: round.loaded.nginxN.requestsPerSec / nginx.requestsPerSec,
    tenementNAddedP50Ms: round.loaded.tenementN.p50Ms - direct.p50Ms,
    nginxNAddedP50Ms: round.loaded.nginxN.p50Ms - direct.p50Ms,
    tenementNAddedP50MsSingle: round.single.tenementN.p50Ms - round.single.direct.p50Ms,
    tenementNsVsNginxNRps: round.loaded.tenementNs.requestsPerSec / round.loaded.nginxN.requestsPerSec,
    tenementNsVsNginxNCpu: (round.loaded.tenementNs.proxyCpuUsPerReq ?? NaN) / (round.loaded.nginxN.proxyCpuUsPerReq ?? NaN),
    tenementNsAddedP50Ms: round.loaded.tenementNs.p50Ms - direct.p50Ms,
  };
}

export function medianRatios(all: readonly ProxyRatios[]): ProxyRatios {
  const keys = Object.keys(all[0]!) as Array<keyof ProxyRatios>;
  return Object.fromEntries(keys.map((k) => [k, median(all.map((r) => r[k]))])) as unknown as ProxyRatios;
}

/** Issue 13's goals, against nginx with as many workers. */
export function proxyGoals(summary: ProxyRatios, connections: number, workers: number): Goal[] {
  return [
    {
      name: 'proxy added p50 (c' + connections + ', 1 worker)',
      measured: `${fmt(summary.tenementAddedP50Ms)} ms`,
      goal: '< 0.3 ms',
      met: summary.tenementAddedP50Ms < 0.3,
    },
    {
      name: 'proxy throughput vs nginx (1 worker each)',
      measured: fmtPct(summary.tenementVsNginxRps),
      goal: '>= 80%',
      met: summary.tenementVsNginxRps >= 0.8,
    },
    {
      name: `proxy throughput vs nginx (${workers} workers each)`,
      measured: fmtPct(summary.tenementNVsNginxNRps),
      goal: '>= 80%',
      met: summary.tenementNVsNginxNRps >= 0.8,
    },
    {
      name: 'proxy CPU per request vs nginx (1 worker each)',
      measured: `${fmt(summary.tenementVsNginxCpu)}x`,
      goal: '<= 1.5x',
      met: summary.tenementVsNginxCpu <= 1.5,
    },
    {
      name: `proxy CPU per request vs nginx (${workers} workers each)`,
      measured: `${fmt(summary.tenementNVsNginxNCpu)}x`,
      goal: '<= 1.5x',
      met: summary.tenementNVsNginxNCpu <= 1.5,
    },
    {
      name: `proxy throughput vs nginx (${workers} workers each, proxy.accept spill)`,
      measured: fmtPct(summary.tenementNsVsNginxNRps),
      goal: '>= 80%',
      met: summary.tenementNsVsNginxNRps >= 0.8,
    },
    {
      name: `proxy CPU per request vs nginx (${workers} workers each, proxy.accept spill)`,
      measured: `${fmt(summary.tenementNsVsNginxNCpu)}x`,
      goal: '<= 1.5x',
      met: summary.tenementNsVsNginxNCpu <= 1.5,
    },
  ];
}

export function formatProxy(result: ProxyBenchResult): string {
  const us = (v: number | null): string => (v === null ? '-' : fmt(v, 1));
  const rows: string[][] = [];
  result.rounds.forEach((round, i) => {
    for (const target of TARGETS) {
      const loaded = round.loaded[target];
      const single = round.single[target];
      rows.push([
        String(i + 1),
        target,
        fmtInt(loaded.requestsPerSec),
        fmt(loaded.p50Ms),
        fmt(loaded.p99Ms),
        us(loaded.proxyCpuUsPerReq),
        us(loaded.backendCpuUsPerReq),
        fmtInt(single.requestsPerSec),
        fmt(single.p50Ms, 3),
      ]);
    }
  });
  const ratioRow = (label: string, r: ProxyRatios): string[] => [
    label,
    fmt(r.tenementVsDirectRps),
    fmt(r.tenementVsNginxRps),
    fmt(r.nginxVsDirectRps),
    fmt(r.tenementVsNodeminRps),
    fmt(r.tenementVsNginxCpu),
    fmt(r.tenementVsNodeminCpu),
    fmt(r.tenementAddedP50Ms),
    fmt(r.nginxAddedP50Ms),
    fmt(r.tenementAddedP99Ms),
    fmt(r.tenementAddedP50MsSingle, 3),
    fmt(r.nginxAddedP50MsSingle, 3),
  ];
  const workerRow = (label: string, r: ProxyRatios): string[] => [
    label,
    fmt(r.tenementNVsNginxNRps),
    fmt(r.tenementNVsNginxNCpu),
    fmt(r.tenementNVsTenementRps),
    fmt(r.nginxNVsNginxRps),
    fmt(r.tenementNAddedP50Ms),
    fmt(r.nginxNAddedP50Ms),
    fmt(r.tenementNAddedP50MsSingle, 3),
    fmt(r.tenementNsVsNginxNRps),
    fmt(r.tenementNsVsNginxNCpu),
    fmt(r.tenementNsAddedP50Ms),
  ];
  const workerRows = [...result.perRound.map((r, i) => workerRow(String(i + 1), r)), workerRow('median', result.ratios)];
  const ratioRows = [...result.perRound.map((r, i) => ratioRow(String(i + 1), r)), ratioRow('median', result.ratios)];
  const parts = [
    `== proxy: wrk -t1 -c${result.connections} -d${result.seconds}s (and -c1 -d1s), same backend program for every path ==`,
    `tenement/nginx = one proxy process; tenementN/nginxN = ${result.workers} (tenementN reaches its own copy of the backend);`,
    'nodemin = bench/fixtures/min-proxy.mjs, the smallest node:http + keep-alive Agent proxy (reference floor);',
    'CPU us/req = user+system CPU of the proxy (resp. backend) processes during the run / requests served',
    table(
      ['round', 'path', `req/s c${result.connections}`, 'p50 ms', 'p99 ms', 'proxy CPU us/req', 'backend CPU us/req', 'req/s c1', 'p50 ms c1'],
      rows,
    ),
    '',
    'ratios within each round (rps = throughput, cpu = proxy CPU per request; +p50/+p99 = added latency vs direct, ms):',
    table(
      [
        'round',
        'ten/direct rps',
        'ten/nginx rps',
        'nginx/direct rps',
        'ten/nodemin rps',
        'ten/nginx cpu',
        'ten/nodemin cpu',
        'ten +p50',
        'nginx +p50',
        'ten +p99',
        'ten +p50 c1',
        'nginx +p50 c1',
      ],
      ratioRows,
    ),
    '',
    `with ${result.workers} proxy processes each (tenementN: settings.proxy.workers ${result.workers}; tenementNs: the same with proxy.accept spill; nginxN: worker_processes ${result.workers}):`,
    table(
      ['round', 'tenN/nginxN rps', 'tenN/nginxN cpu', 'tenN/ten rps', 'nginxN/nginx rps', 'tenN +p50', 'nginxN +p50', 'tenN +p50 c1', 'tenNs/nginxN rps', 'tenNs/nginxN cpu', 'tenNs +p50'],
      workerRows,
    ),
  ];
  if (result.warnings.length > 0) parts.push('', ...result.warnings.map((w) => `WARNING: ${w}`));
  if (result.profile) {
    const cpu = result.profiledCpuShare === null ? 'n/a' : `${(result.profiledCpuShare * 100).toFixed(0)}%`;
    parts.push(
      '',
      `== profile of ten serve under the same load (${fmtInt(result.profiledRps ?? NaN)} req/s with the profiler on) ==`,
      `CPU time actually used by ten serve in the window (/proc): ${cpu} of one core. V8 samples wall-clock time,`,
      'so when the profile says busier than that, the excess is time the process sat preempted (most often right',
      'after a socket write woke the peer process) and is charged to the frame it was in, typically writeBuffer/writev.',
      formatProfile(result.profile),
    );
  }
  return parts.join('\n');
}
