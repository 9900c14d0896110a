/**
 * Proxy benchmark: requests per second, p50/p99 latency and proxy CPU per request for one bare node:http
 * backend ('hello') reached (a) directly, (b) through Tenement (`ten serve` in its own process, routing
 * `bench.hello.localhost` to the backend, which runs as its instance) with one proxy process and with N
 * (settings.proxy.workers), (c) through nginx configured as in bench/README.md with 1 and N worker processes
 * and, for reference, (d) through the smallest node:http proxy (fixtures/min-proxy.mjs). wrk is the load
 * generator; rounds are interleaved and every figure is reported as a ratio within its round.
 *
 *   node --import tsx bench/proxy.ts [--profile]
 *
 * Env: BENCH_ROUNDS (6), BENCH_SECONDS (2), BENCH_CONNECTIONS (32), BENCH_WORKERS (N: the cores, at least 2). Many short interleaved slices rather than a
 * few long ones: on a shared machine the background load changes within seconds, and the median of per-round
 * ratios is what survives it.
 */
import { copyFileSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { formatProfile, summarizeProfile, type ProfileSummary } from './cpuprofile.ts';
import {
  BENCH_DIR,
  type Goal,
  type ManagedChild,
  type Nginx,
  ROOT,
  type TenServe,
  type WrkResult,
  childPids,
  cpuMicros,
  cpuMicrosOf,
  fmt,
  fmtInt,
  fmtPct,
  freePort,
  isMain,
  makeTempDir,
  median,
  removeTempDir,
  requireTools,
  runWrk,
  startChild,
  startNginx,
  startNginxWorkers,
  startTenServe,
  table,
  waitForOk,
} from './lib.ts';

/** `nodemin` is bench/fixtures/min-proxy.mjs: the floor of a node:http proxy, for reference. */
/** `tenement` and `nginx` run one proxy process (worker), `tenementN` and `nginxN` run N. */
export const TARGETS = ['direct', 'tenement', 'tenementN', 'nginx', 'nginxN', 'nodemin'] as const;
export type Target = (typeof TARGETS)[number];
const HOST = 'bench.hello.localhost';
const HELLO_APP = path.join(BENCH_DIR, 'fixtures', 'hello.mjs');
const MIN_PROXY = path.join(BENCH_DIR, 'fixtures', 'min-proxy.mjs');

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

export interface ProxyBenchOptions {
  rounds?: number;
  seconds?: number;
  connections?: number;
  profile?: boolean;
  log?: (line: string) => void;
}

function ratios(round: ProxyRound): ProxyRatios {
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
  };
}

function medianRatios(all: readonly ProxyRatios[]): ProxyRatios {
  const keys = Object.keys(all[0]!) as Array<keyof ProxyRatios>;
  return Object.fromEntries(keys.map((k) => [k, median(all.map((r) => r[k]))])) as unknown as ProxyRatios;
}

/** A config for `ten serve`: one service whose single instance is the hello backend on a port we chose. */
function writeServeConfig(dir: string, backendPort: number, workers = 1, name = 'tenement.config.json'): string {
  const file = path.join(dir, name);
  const config = {
    settings: {
      domain: 'localhost',
      port: 0,
      listen: '127.0.0.1',
      dataDir: path.join(dir, workers === 1 ? 'data' : `data-${workers}`),
      // A one-port range, so the benchmark knows where the instance listens and can reach it directly.
      portRange: { from: backendPort, to: backendPort },
      healthInterval: '60s',
      proxy: { workers },
    },
    services: {
      hello: { command: process.execPath, args: [HELLO_APP], health: '/health', idleTimeout: false },
    },
    instances: { hello: ['bench'] },
  };
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

async function startTenement(config: string, dataDir: string, nodeArgs: readonly string[] = []): Promise<TenServe> {
  const serve = await startTenServe({ config, dataDir, nodeArgs });
  try {
    await waitForOk(serve.port, HOST, 20_000, `${HOST} through ten serve`);
  } catch (error) {
    await serve.stop();
    throw new Error(`${(error as Error).message}\n--- ten serve output ---\n${serve.child.output()}`);
  }
  return serve;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

/** ten serve's own processes (it and its proxy workers), not the instances it runs. */
function proxyProcesses(servePid: number): { proxy: number[]; backend: number[] } {
  const proxy = [servePid];
  const backend: number[] = [];
  for (const pid of childPids(servePid)) {
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    } catch {
      continue;
    }
    (cmdline.includes('tenement-proxy') || cmdline.includes('worker-main') ? proxy : backend).push(pid);
  }
  return { proxy, backend };
}

export async function runProxyBench(options: ProxyBenchOptions = {}): Promise<ProxyBenchResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const roundsWanted = options.rounds ?? Number(process.env.BENCH_ROUNDS ?? 6);
  const seconds = options.seconds ?? Number(process.env.BENCH_SECONDS ?? 2);
  const connections = options.connections ?? Number(process.env.BENCH_CONNECTIONS ?? 32);
  const workers = Number(process.env.BENCH_WORKERS ?? Math.max(2, availableParallelism()));
  const singleSeconds = 1;
  const tools = requireTools();
  const dir = makeTempDir('proxy');
  const backendPort = await freePort();
  const config = writeServeConfig(dir, backendPort);
  const dataDir = path.join(dir, 'data');

  // The N-worker ten serve runs its own copy of the backend (one port range each).
  const backendPortN = await freePort();
  const configN = writeServeConfig(dir, backendPortN, workers, 'tenement-n.config.json');
  let serve: TenServe | null = null;
  let serveN: TenServe | null = null;
  let nginx: Nginx | null = null;
  let nginxN: Nginx | null = null;
  let nodemin: ManagedChild | null = null;
  const warnings: string[] = [];
  try {
    serve = await startTenement(config, dataDir);
    await waitForOk(backendPort, HOST, 5_000, 'the hello backend on its own port');
    nginx = await startNginx(tools.nginx, backendPort, dir, HOST);
    serveN = await startTenement(configN, path.join(dir, `data-${workers}`));
    await waitForOk(backendPortN, HOST, 5_000, 'the second hello backend on its own port');
    nginxN = await startNginxWorkers(tools.nginx, backendPort, path.join(dir, 'nginx-n'), workers, HOST);
    const nodeminPort = await freePort();
    nodemin = startChild(process.execPath, [MIN_PROXY], {
      env: { ...process.env, PORT: String(nodeminPort), UPSTREAM_PORT: String(backendPort) },
    });
    await waitForOk(nodeminPort, HOST, 10_000, 'bench/fixtures/min-proxy.mjs');
    const ports: Record<Target, number> = {
      direct: backendPort,
      tenement: serve.port,
      tenementN: serveN.port,
      nginx: nginx.port,
      nginxN: nginxN.port,
      nodemin: nodeminPort,
    };
    // The processes whose CPU time each path costs: the backend is ten serve's child, nginx has workers.
    const one = proxyProcesses(serve.child.pid);
    const many = proxyProcesses(serveN.child.pid);
    if (many.proxy.length !== workers) warnings.push(`ten serve with proxy.workers ${workers} runs ${many.proxy.length} proxy processes`);
    const backendPids: Record<Target, number[]> = {
      direct: one.backend,
      tenement: one.backend,
      tenementN: many.backend,
      nginx: one.backend,
      nginxN: one.backend,
      nodemin: one.backend,
    };
    const proxyPids: Record<Target, number[]> = {
      direct: [],
      tenement: one.proxy,
      tenementN: many.proxy,
      nginx: [nginx.child.pid, ...childPids(nginx.child.pid)],
      nginxN: [nginxN.child.pid, ...childPids(nginxN.child.pid)],
      nodemin: [nodemin.pid],
    };
    const wrk = async (target: Target, conns: number, secs: number): Promise<Sample> => {
      const proxyBefore = proxyPids[target].map(cpuMicros);
      const backendBefore = cpuMicrosOf(backendPids[target]);
      const result = await runWrk({ binary: tools.wrk, port: ports[target], host: HOST, threads: 1, connections: conns, seconds: secs });
      const requests = Math.max(1, result.requests);
      const split = proxyPids[target].map((pid, i) => (cpuMicros(pid) - proxyBefore[i]!) / requests);
      return {
        ...result,
        proxyCpuUsPerReq: target === 'direct' ? null : split.reduce((sum, us) => sum + us, 0),
        proxyCpuSplit: split,
        backendCpuUsPerReq: (cpuMicrosOf(backendPids[target]) - backendBefore) / requests,
      };
    };

    log(
      `proxy: backend :${backendPort} (:${backendPortN} for ${workers} workers), ten serve :${serve.port} and :${serveN.port}, nginx :${nginx.port} and :${nginxN.port}, ` +
        `min node proxy :${nodeminPort}; N = ${workers} workers; wrk -t1 -c${connections} -d${seconds}s, ${roundsWanted} rounds`,
    );
    // Warm-up: JIT (each of ten serve's proxy processes compiles its own hot path: measured, a proxy worker's CPU
    // per request takes a few seconds of load to settle), connection pools, nginx upstream keep-alive.
    for (const target of TARGETS) await wrk(target, connections, target === 'tenementN' ? 3 : 1);

    const rounds: ProxyRound[] = [];
    for (let r = 0; r < roundsWanted; r++) {
      // Rotate the order so no target always runs first (or last) in a round.
      const order = TARGETS.map((_, i) => TARGETS[(i + r) % TARGETS.length]!);
      const loaded = {} as Record<Target, Sample>;
      const single = {} as Record<Target, Sample>;
      for (const target of order) loaded[target] = await wrk(target, connections, seconds);
      for (const target of order) single[target] = await wrk(target, 1, singleSeconds);
      rounds.push({ loaded, single });
      for (const target of TARGETS) {
        const result = loaded[target];
        log(
          `  round ${r + 1} ${target.padEnd(9)} ${fmtInt(result.requestsPerSec).padStart(7)} req/s  p50 ${fmt(result.p50Ms)} ms  p99 ${fmt(result.p99Ms)} ms` +
            `  proxy CPU ${result.proxyCpuUsPerReq === null ? '  -' : fmt(result.proxyCpuUsPerReq, 0).padStart(3)} us/req` +
            (result.proxyCpuSplit.length > 1 ? ` (${result.proxyCpuSplit.map((us) => fmt(us, 0)).join('+')})` : '') +
            `   | c1: ${fmtInt(single[target].requestsPerSec)} req/s p50 ${fmt(single[target].p50Ms, 3)} ms`,
        );
        for (const res of [result, single[target]]) {
          if (res.non2xx > 0 || res.socketErrors > 0) {
            warnings.push(`round ${r + 1} ${target}: ${res.non2xx} non-2xx responses, ${res.socketErrors} socket errors`);
          }
        }
      }
    }

    let profile: ProfileSummary | null = null;
    let profiledRps: number | null = null;
    let profiledCpuShare: number | null = null;
    if (options.profile) {
      // A separate run under the profiler, after the measured rounds, so its overhead does not touch them.
      await serve.stop();
      serve = null;
      const profDir = path.join(dir, 'cpuprofile');
      serve = await startTenement(config, dataDir, ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '250']);
      ports.tenement = serve.port;
      proxyPids.tenement = [serve.child.pid];
      backendPids.tenement = proxyProcesses(serve.child.pid).backend;
      await wrk('tenement', connections, 1);
      const cpuBefore = cpuMicros(serve.child.pid);
      const from = nowUs();
      const profiled = await wrk('tenement', connections, Math.max(seconds, 4));
      const to = nowUs();
      profiledCpuShare = (cpuMicros(serve.child.pid) - cpuBefore) / (to - from);
      profiledRps = profiled.requestsPerSec;
      await serve.stop();
      serve = null;
      // One file per thread (tsx runs its loader hooks on a worker thread); the main thread's has thread id 0.
      const file = readdirSync(profDir).find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f));
      if (!file) throw new Error(`no .cpuprofile written in ${profDir}`);
      // Kept for a closer look (chrome://inspect or speedscope); .bench-tmp/ is git-ignored.
      const keep = path.join(ROOT, '.bench-tmp');
      mkdirSync(keep, { recursive: true });
      const kept = path.join(keep, 'ten-serve-proxy.cpuprofile');
      copyFileSync(path.join(profDir, file), kept);
      profile = summarizeProfile(kept, {
        window: [from, to],
        top: 30,
        treeMin: 0.01,
      });
    }

    const perRound = rounds.map(ratios);
    const summary = medianRatios(perRound);
    // Issue 13's goals, against nginx with as many workers.
    const goals: Goal[] = [
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
    ];
    return { workers, connections, seconds, rounds, perRound, ratios: summary, goals, warnings, profile, profiledRps, profiledCpuShare };
  } finally {
    await nginx?.stop();
    await nginxN?.stop();
    await nodemin?.stop();
    await serve?.stop();
    await serveN?.stop();
    removeTempDir(dir);
  }
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
    `with ${result.workers} proxy processes each (tenementN: settings.proxy.workers ${result.workers}; nginxN: worker_processes ${result.workers}):`,
    table(['round', 'tenN/nginxN rps', 'tenN/nginxN cpu', 'tenN/ten rps', 'nginxN/nginx rps', 'tenN +p50', 'nginxN +p50', 'tenN +p50 c1'], workerRows),
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

if (isMain(import.meta.url)) {
  const result = await runProxyBench({ profile: process.argv.includes('--profile') });
  process.stdout.write(`\n${formatProxy(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'} ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
