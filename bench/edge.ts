/**
 * The HAProxy edge (docs/edge.md) against nginx on warm traffic: one bare node:http backend ('hello') reached
 * (a) directly, (b) through `ten serve` with `settings.edge: { kind: 'haproxy' }` (HAProxy routing to the running
 * instance, programmed by Tenement; HAProxy's default threads: one per core), (c) through the built-in proxy of
 * the same `ten serve` (its activator port), and (d) through nginx with 1 and N worker processes, configured as in
 * bench/README.md. wrk drives each in interleaved rounds; figures are medians of per-round ratios.
 *
 *   node --import tsx bench/edge.ts          (or: npm run bench -- edge)
 *
 * Env: BENCH_ROUNDS (5), BENCH_SECONDS (2), BENCH_CONNECTIONS (32), BENCH_WORKERS (N: the cores, at least 2),
 * BENCH_HAPROXY_THREADS (settings.edge.threads; default HAProxy's own, one per core).
 */
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { checkHaproxy } from '../plugins/edge-haproxy/check.ts';
import {
  BENCH_DIR,
  type Goal,
  type Nginx,
  type TenServe,
  type WrkResult,
  childCommandLines,
  childPids,
  cpuMicrosOf,
  fmt,
  fmtInt,
  freePort,
  isMain,
  makeTempDir,
  median,
  removeTempDir,
  requireTools,
  runWrk,
  startNginx,
  startNginxWorkers,
  startTenServe,
  table,
  waitForOk,
} from './lib.ts';

const TARGETS = ['direct', 'haproxy', 'builtin', 'nginx', 'nginxN'] as const;
type Target = (typeof TARGETS)[number];
const HOST = 'bench.hello.localhost';
const HELLO_APP = path.join(BENCH_DIR, 'fixtures', 'hello.mjs');

interface Sample extends WrkResult {
  proxyCpuUsPerReq: number | null;
}

export interface EdgeBenchResult {
  connections: number;
  workers: number;
  haproxyVersion: string;
  /** Per target: medians over rounds. */
  medians: Record<Target, { requestsPerSec: number; p50Ms: number; p99Ms: number; proxyCpuUsPerReq: number | null }>;
  haproxyVsNginxRps: number;
  haproxyVsNginxNRps: number;
  haproxyVsNginxNCpu: number;
  builtinVsNginxRps: number;
  goals: Goal[];
  warnings: string[];
}

/** HAProxy's master and worker: ten serve's children whose command line is haproxy's, and theirs. */
function haproxyPids(servePid: number): number[] {
  const pids: number[] = [];
  for (const { pid, cmdline } of childCommandLines(servePid)) {
    if (cmdline.includes('haproxy')) pids.push(pid, ...childPids(pid));
  }
  return pids;
}

export async function runEdgeBench(options: { log?: (line: string) => void } = {}): Promise<EdgeBenchResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
  const seconds = Number(process.env.BENCH_SECONDS ?? 2);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
  const workers = Number(process.env.BENCH_WORKERS ?? Math.max(2, availableParallelism()));
  const haproxy = checkHaproxy();
  if (!haproxy.ok) throw new Error(haproxy.reason ?? 'haproxy is not usable');
  const tools = requireTools();
  const dir = makeTempDir('edge');
  const backendPort = await freePort();
  const edgePort = await freePort();
  const dataDir = path.join(dir, 'data');
  const config = path.join(dir, 'tenement.config.json');
  writeFileSync(
    config,
    `${JSON.stringify({
      settings: {
        domain: 'localhost',
        listen: '127.0.0.1',
        dataDir,
        portRange: { from: backendPort, to: backendPort },
        healthInterval: '60s',
        edge: { kind: 'haproxy', listen: `127.0.0.1:${edgePort}`, ...(process.env.BENCH_HAPROXY_THREADS ? { threads: Number(process.env.BENCH_HAPROXY_THREADS) } : {}) },
      },
      services: { hello: { command: process.execPath, args: [HELLO_APP], health: '/health', idleTimeout: false } },
      instances: { hello: ['bench'] },
    })}\n`,
  );
  let serve: TenServe | null = null;
  let nginx: Nginx | null = null;
  let nginxN: Nginx | null = null;
  const warnings: string[] = [];
  try {
    serve = await startTenServe({ config, dataDir });
    await waitForOk(backendPort, HOST, 20_000, 'the hello backend');
    await waitForOk(edgePort, HOST, 20_000, 'the hello backend through haproxy');
    nginx = await startNginx(tools.nginx, backendPort, dir, HOST);
    nginxN = await startNginxWorkers(tools.nginx, backendPort, path.join(dir, 'nginx-n'), workers, HOST);
    // Give the edge a moment to switch the instance's server from the activator to the instance.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const ports: Record<Target, number> = { direct: backendPort, haproxy: edgePort, builtin: serve.port, nginx: nginx.port, nginxN: nginxN.port };
    const proxyPids = (target: Target): number[] => {
      if (target === 'direct') return [];
      if (target === 'haproxy') return haproxyPids(serve!.child.pid);
      if (target === 'builtin') return [serve!.child.pid];
      const n = target === 'nginx' ? nginx! : nginxN!;
      return [n.child.pid, ...childPids(n.child.pid)];
    };
    const wrk = async (target: Target): Promise<Sample> => {
      const pids = proxyPids(target);
      const before = cpuMicrosOf(pids);
      const result = await runWrk({ binary: tools.wrk, port: ports[target], host: HOST, threads: 1, connections, seconds });
      return { ...result, proxyCpuUsPerReq: target === 'direct' ? null : (cpuMicrosOf(pids) - before) / Math.max(1, result.requests) };
    };
    log(`edge: haproxy ${haproxy.version} :${edgePort}, ten serve (activator) :${serve.port}, nginx :${nginx.port} and ${workers} workers :${nginxN.port}; wrk -t1 -c${connections} -d${seconds}s, ${rounds} rounds`);
    for (const target of TARGETS) await wrk(target);
    const samples: Array<Record<Target, Sample>> = [];
    for (let r = 0; r < rounds; r++) {
      const round = {} as Record<Target, Sample>;
      for (let i = 0; i < TARGETS.length; i++) {
        const target = TARGETS[(i + r) % TARGETS.length]!;
        round[target] = await wrk(target);
        if (round[target].non2xx > 0 || round[target].socketErrors > 0) warnings.push(`round ${r + 1} ${target}: ${round[target].non2xx} non-2xx, ${round[target].socketErrors} socket errors`);
      }
      samples.push(round);
      log(`  round ${r + 1} ${TARGETS.map((t) => `${t} ${fmtInt(round[t].requestsPerSec)}`).join('  ')}`);
    }
    const med = (f: (s: Record<Target, Sample>) => number): number => median(samples.map(f));
    const medians = Object.fromEntries(
      TARGETS.map((t) => [
        t,
        {
          requestsPerSec: med((s) => s[t].requestsPerSec),
          p50Ms: med((s) => s[t].p50Ms),
          p99Ms: med((s) => s[t].p99Ms),
          proxyCpuUsPerReq: t === 'direct' ? null : med((s) => s[t].proxyCpuUsPerReq ?? NaN),
        },
      ]),
    ) as EdgeBenchResult['medians'];
    const haproxyVsNginxRps = med((s) => s.haproxy.requestsPerSec / s.nginx.requestsPerSec);
    const haproxyVsNginxNRps = med((s) => s.haproxy.requestsPerSec / s.nginxN.requestsPerSec);
    const haproxyVsNginxNCpu = med((s) => (s.haproxy.proxyCpuUsPerReq ?? NaN) / (s.nginxN.proxyCpuUsPerReq ?? NaN));
    const builtinVsNginxRps = med((s) => s.builtin.requestsPerSec / s.nginx.requestsPerSec);
    // At equal workers: one HAProxy thread against one nginx worker, else HAProxy's default (a thread per core) against N.
    const oneThread = process.env.BENCH_HAPROXY_THREADS === '1';
    const equal = oneThread ? haproxyVsNginxRps : haproxyVsNginxNRps;
    const goals: Goal[] = [
      { name: `haproxy edge throughput vs nginx (${oneThread ? '1 thread vs 1 worker' : `default threads vs ${workers} workers`})`, measured: `${fmt(equal, 2)}x`, goal: '>= 0.95x', met: equal >= 0.95 },
    ];
    return { connections, workers, haproxyVersion: haproxy.version ?? '?', medians, haproxyVsNginxRps, haproxyVsNginxNRps, haproxyVsNginxNCpu, builtinVsNginxRps, goals, warnings };
  } finally {
    await nginx?.stop();
    await nginxN?.stop();
    await serve?.stop();
    removeTempDir(dir);
  }
}

export function formatEdge(result: EdgeBenchResult): string {
  const rows = TARGETS.map((t) => {
    const m = result.medians[t];
    return [t, fmtInt(m.requestsPerSec), fmt(m.p50Ms, 2), fmt(m.p99Ms, 2), m.proxyCpuUsPerReq === null ? '-' : fmt(m.proxyCpuUsPerReq, 0)];
  });
  const lines = [
    `HAProxy edge (haproxy ${result.haproxyVersion}), ${result.connections} connections, medians of rounds`,
    table(['target', 'req/s', 'p50 ms', 'p99 ms', 'proxy CPU us/req'], rows),
    `haproxy edge / nginx 1 worker: ${fmt(result.haproxyVsNginxRps, 2)}x req/s; / nginx ${result.workers} workers: ${fmt(result.haproxyVsNginxNRps, 2)}x req/s, ${fmt(result.haproxyVsNginxNCpu, 2)}x CPU per request; built-in / nginx 1 worker: ${fmt(result.builtinVsNginxRps, 2)}x`,
    ...result.goals.map((g) => `goal ${g.met ? 'met' : 'NOT met'}: ${g.name}: ${g.measured} (${g.goal})`),
    ...result.warnings.map((w) => `warning: ${w}`),
  ];
  return lines.join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runEdgeBench();
  process.stdout.write(`\n${formatEdge(result)}\n`);
}
