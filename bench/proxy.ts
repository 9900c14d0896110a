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
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { summarizeProfile, type ProfileSummary } from './cpuprofile.ts';
import {
  type ManagedChild,
  type Nginx,
  ROOT,
  type TenServe,
  cpuMicros,
  cpuMicrosOf,
  childPids,
  fmt,
  fmtInt,
  freePort,
  isMain,
  makeTempDir,
  removeTempDir,
  requireTools,
  runWrk,
  startChild,
  startNginx,
  startNginxWorkers,
  waitForOk,
} from './lib.ts';
import { TARGETS, type ProxyBenchResult, type ProxyRound, type Sample, type Target, formatProxy, medianRatios, proxyGoals, ratios } from './proxy-report.ts';
import { HOST, MIN_PROXY, dataDirOf, proxyProcesses, startTenement, writeServeConfig } from './proxy-setup.ts';

export { TARGETS, formatProxy };
export type { ProxyBenchResult, ProxyRatios, ProxyRound, Sample, Target } from './proxy-report.ts';

export interface ProxyBenchOptions {
  rounds?: number;
  seconds?: number;
  connections?: number;
  profile?: boolean;
  log?: (line: string) => void;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);

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
  // And the same under proxy.accept 'spill' (workers accept only while the accepting processes are saturated and a core is idle).
  const backendPortS = await freePort();
  const configS = writeServeConfig(dir, backendPortS, workers, 'tenement-s.config.json', 'spill');
  let serve: TenServe | null = null;
  let serveN: TenServe | null = null;
  let serveS: TenServe | null = null;
  let nginx: Nginx | null = null;
  let nginxN: Nginx | null = null;
  let nodemin: ManagedChild | null = null;
  const warnings: string[] = [];
  try {
    serve = await startTenement(config, dataDir);
    await waitForOk(backendPort, HOST, 5_000, 'the hello backend on its own port');
    nginx = await startNginx(tools.nginx, backendPort, dir, HOST);
    serveN = await startTenement(configN, dataDirOf(dir, workers));
    await waitForOk(backendPortN, HOST, 5_000, 'the second hello backend on its own port');
    serveS = await startTenement(configS, dataDirOf(dir, workers, 'spill'));
    await waitForOk(backendPortS, HOST, 5_000, 'the third hello backend on its own port');
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
      tenementNs: serveS.port,
      nginx: nginx.port,
      nginxN: nginxN.port,
      nodemin: nodeminPort,
    };
    // The processes whose CPU time each path costs: the backend is ten serve's child, nginx has workers.
    const one = proxyProcesses(serve.child.pid);
    const many = proxyProcesses(serveN.child.pid);
    const spilling = proxyProcesses(serveS.child.pid);
    if (many.proxy.length !== workers) warnings.push(`ten serve with proxy.workers ${workers} runs ${many.proxy.length} proxy processes`);
    const backendPids: Record<Target, number[]> = {
      direct: one.backend,
      tenement: one.backend,
      tenementN: many.backend,
      tenementNs: spilling.backend,
      nginx: one.backend,
      nginxN: one.backend,
      nodemin: one.backend,
    };
    const proxyPids: Record<Target, number[]> = {
      direct: [],
      tenement: one.proxy,
      tenementN: many.proxy,
      tenementNs: spilling.proxy,
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
    for (const target of TARGETS) await wrk(target, connections, target === 'tenementN' || target === 'tenementNs' ? 3 : 1);

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
    const goals = proxyGoals(summary, connections, workers);
    return { workers, connections, seconds, rounds, perRound, ratios: summary, goals, warnings, profile, profiledRps, profiledCpuShare };
  } finally {
    await nginx?.stop();
    await nginxN?.stop();
    await nodemin?.stop();
    await serve?.stop();
    await serveN?.stop();
    await serveS?.stop();
    removeTempDir(dir);
  }
}

if (isMain(import.meta.url)) {
  const result = await runProxyBench({ profile: process.argv.includes('--profile') });
  process.stdout.write(`\n${formatProxy(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'} ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
