/**
 * `npm run bench`: the proxy, cold-wake and footprint benchmarks in sequence, then a summary table. Every figure
 * is a ratio against a baseline measured in the same run (absolute times drift on shared machines).
 *
 *   npm run bench                  # all three, about 2 minutes
 *   npm run bench -- --profile     # also profiles `ten serve` under proxy load (.bench-tmp/ten-serve-proxy.cpuprofile)
 *   npm run bench -- proxy wake    # only some: proxy, otel, wake, footprint, logs, wasm, cli, isolation
 *   npm run bench -- edge          # the HAProxy edge against nginx alone (proxy runs it too, when haproxy is installed)
 *   npm run bench -- isolation     # every isolation tier the host has, against the process tier (not in the default set)
 *   npm run bench -- soak          # the churn soak, 30 minutes (SOAK_MINUTES; not in the default set)
 *   npm run bench -- fleet         # fleet mode on a 3-server NATS cluster (needs nats-server; not in the default set)
 *   npm run bench -- lb            # load balancing: p99 under p2c and least-requests vs weighted, one instance slowed (needs wrk)
 *   npm run bench -- autoscale     # autoscaling: reaction time to a step 1 -> 50 clients, p99 against a pre-scaled pool (opt-in)
 *   npm run bench -- discovery     # service discovery: DNS lookup vs a bare dns-packet echo, a call by name vs by tenant host (opt-in)
 *   npm run bench -- snapshot      # named snapshots: create/restore times, frozen time, zstd -1 vs gzip/brotli on the archive (needs root and CRIU; not in the default set)
 *   npm run bench -- migrate       # moving an instance between fleet nodes under load, live (CRIU) vs stop-copy-start (needs root, nats-server, CRIU; not in the default set)
 *   npm run bench -- suspend       # wake from suspend (CRIU restore) vs cold wake, 100 ms and 1 s apps (needs root and npm run fetch:criu; not in the default set)
 *
 * Needs wrk and nginx for the proxy benchmark:  apt-get install -y nginx-light wrk
 * Results are also written to .bench-tmp/bench-results.json.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { formatCli, runCliBench, type CliBenchResult } from './cli.ts';
import { formatEdge, runEdgeBench, type EdgeBenchResult } from './edge.ts';
import { formatFleet, runFleetBench, type FleetBenchResult } from './fleet.ts';
import { formatColdWake, runColdWakeBench, type ColdWakeResult } from './cold-wake.ts';
import { formatFootprint, runFootprintBench, type FootprintResult } from './footprint.ts';
import { formatIsolation, runIsolationBench, type IsolationResult } from './isolation.ts';
import { formatLb, runLbBench, type LbBenchResult } from './lb.ts';
import { formatAutoscale, runAutoscaleBench, type AutoscaleBenchResult } from './autoscale.ts';
import { formatDiscovery, runDiscoveryBench, type DiscoveryBenchResult } from './discovery.ts';
import { formatSuspend, runSuspendBench, type SuspendBenchResult } from './suspend.ts';
import { formatMigrate, runMigrateBench, type MigrateBenchResult } from './migrate.ts';
import { runSnapshotArchiveBench } from './snapshot-archive.ts';
import { formatLogsSearch, runLogsSearchBench, type LogsSearchResult } from './logs-search.ts';
import { ROOT, fmt, fmtInt, median, requireTools, table, writeJson, type Goal } from './lib.ts';
import { formatOtel, runOtelBench, type OtelBenchResult } from './otel.ts';
import { formatProxy, runProxyBench, type ProxyBenchResult } from './proxy.ts';
import { formatSoak, runSoakBench, soakOptionsFromEnv, type SoakResult } from './soak.ts';
import { formatWasm, runWasmBench, type WasmBenchResult } from './wasm.ts';

const NAMES = ['proxy', 'edge', 'otel', 'wake', 'footprint', 'logs', 'wasm', 'cli', 'lb', 'isolation', 'soak', 'fleet', 'suspend', 'snapshot', 'migrate', 'autoscale', 'discovery'] as const;
type Name = (typeof NAMES)[number];
/** Run only when named: it boots VMs and sandboxes, minutes on an emulated microvm. */
const OPT_IN: ReadonlySet<Name> = new Set(['isolation', 'soak', 'edge', 'fleet', 'suspend', 'snapshot', 'migrate', 'autoscale', 'discovery']);

const args = process.argv.slice(2);
const chosen = args.filter((a): a is Name => (NAMES as readonly string[]).includes(a));
const unknown = args.filter((a) => !a.startsWith('--') && !(NAMES as readonly string[]).includes(a));
if (unknown.length > 0) {
  process.stderr.write(`bench: unknown benchmark ${unknown.join(', ')}; expected any of ${NAMES.join(', ')}\n`);
  process.exit(2);
}
const selected = new Set<Name>(chosen.length > 0 ? chosen : NAMES.filter((name) => !OPT_IN.has(name)));
const profile = args.includes('--profile');

const started = Date.now();
const out = (text: string): void => {
  process.stdout.write(`${text}\n`);
};
const failures: string[] = [];
let proxy: ProxyBenchResult | null = null;
let edge: EdgeBenchResult | null = null;
let wake: ColdWakeResult | null = null;
let footprint: FootprintResult | null = null;
let logs: LogsSearchResult | null = null;
let isolation: IsolationResult | null = null;
let wasm: WasmBenchResult | null = null;
let cli: CliBenchResult | null = null;
let otel: OtelBenchResult | null = null;
let soak: SoakResult | null = null;
let fleet: FleetBenchResult | null = null;
let lb: LbBenchResult | null = null;
let autoscaleResult: AutoscaleBenchResult | null = null;
let discoveryResult: DiscoveryBenchResult | null = null;
let suspend: SuspendBenchResult | null = null;
let migrate: MigrateBenchResult | null = null;

async function attempt<T>(name: string, run: () => Promise<T>): Promise<T | null> {
  try {
    return await run();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    failures.push(`${name}: ${message}`);
    out(`\n!! ${name} benchmark failed: ${message}\n`);
    return null;
  }
}

out(`tenement benchmarks (${[...selected].join(', ')}), node ${process.version}, pid ${process.pid}\n`);

if (selected.has('proxy')) {
  let toolsOk = true;
  try {
    requireTools();
  } catch (error) {
    toolsOk = false;
    const message = (error as Error).message;
    failures.push(`proxy: ${message}`);
    out(`!! proxy benchmark skipped: ${message}\n`);
  }
  if (toolsOk) {
    proxy = await attempt('proxy', () => runProxyBench({ profile }));
    if (proxy) out(`\n${formatProxy(proxy)}\n`);
  }
}
// The HAProxy edge row (docs/edge.md): with proxy when haproxy is installed, or alone as `edge`.
if (selected.has('edge') || (selected.has('proxy') && spawnSync('haproxy', ['-v']).status === 0)) {
  edge = await attempt('edge', () => runEdgeBench());
  if (edge) out(`\n${formatEdge(edge)}\n`);
}
if (selected.has('otel')) {
  let toolsOk = true;
  try {
    requireTools();
  } catch (error) {
    toolsOk = false;
    failures.push(`otel: ${(error as Error).message}`);
    out(`!! otel benchmark skipped: ${(error as Error).message}\n`);
  }
  if (toolsOk) {
    otel = await attempt('otel', () => runOtelBench());
    if (otel) out(`\n${formatOtel(otel)}\n`);
  }
}
if (selected.has('wake')) {
  wake = await attempt('cold wake', () => runColdWakeBench());
  if (wake) out(`\n${formatColdWake(wake)}\n`);
}
if (selected.has('footprint')) {
  footprint = await attempt('footprint', () => runFootprintBench());
  if (footprint) out(`\n${formatFootprint(footprint)}\n`);
}
if (selected.has('logs')) {
  logs = await attempt('logs search', () => runLogsSearchBench());
  if (logs) out(`\n${formatLogsSearch(logs)}\n`);
}
if (selected.has('wasm')) {
  wasm = await attempt('wasm', () => runWasmBench());
  if (wasm) out(`\n${formatWasm(wasm)}\n`);
}
if (selected.has('cli')) {
  cli = await attempt('cli', () => runCliBench());
  if (cli) out(`\n${formatCli(cli)}\n`);
}
if (selected.has('lb')) {
  lb = await attempt('lb', () => runLbBench());
  if (lb) out(`\n${formatLb(lb)}\n`);
}
if (selected.has('autoscale')) {
  autoscaleResult = await attempt('autoscale', () => runAutoscaleBench());
  if (autoscaleResult) out(`\n${formatAutoscale(autoscaleResult)}\n`);
}
if (selected.has('discovery')) {
  discoveryResult = await attempt('discovery', () => runDiscoveryBench());
  if (discoveryResult) out(`\n${formatDiscovery(discoveryResult)}\n`);
}
if (selected.has('suspend')) {
  suspend = await attempt('suspend', () => runSuspendBench());
  if (suspend) out(`\n${formatSuspend(suspend)}\n`);
}
if (selected.has('snapshot')) {
  const report = await attempt('snapshot', () => runSnapshotArchiveBench());
  if (report) out(`\n${report}\n`);
}
if (selected.has('migrate')) {
  migrate = await attempt('migrate', () => runMigrateBench());
  if (migrate) out(`\n${formatMigrate(migrate)}\n`);
}
if (selected.has('isolation')) {
  isolation = await attempt('isolation', () => runIsolationBench());
  if (isolation) out(`\n${formatIsolation(isolation)}\n`);
}
if (selected.has('soak')) {
  soak = await attempt('soak', () => runSoakBench(soakOptionsFromEnv()));
  if (soak) out(`\n${formatSoak(soak)}\n`);
}
if (selected.has('fleet')) {
  fleet = await attempt('fleet', () => runFleetBench());
  if (fleet) out(`\n${formatFleet(fleet)}\n`);
}

// ---- summary ----

const rows: string[][] = [];
const goals: Goal[] = [];
if (edge) goals.push(...edge.goals);
if (proxy) {
  const r = proxy.ratios;
  const med = (pick: (round: ProxyBenchResult['rounds'][number]) => number): number => {
    const values = proxy!.rounds.map(pick).sort((a, b) => a - b);
    return values[Math.floor(values.length / 2)]!;
  };
  const c = `c${proxy.connections}`;
  rows.push(
    ['proxy req/s vs nginx', `${fmtInt(med((x) => x.loaded.tenement.requestsPerSec))} req/s`, `nginx ${fmtInt(med((x) => x.loaded.nginx.requestsPerSec))}`, fmt(r.tenementVsNginxRps), '>= 0.70'],
    ['proxy req/s vs direct', `${fmtInt(med((x) => x.loaded.tenement.requestsPerSec))} req/s`, `direct ${fmtInt(med((x) => x.loaded.direct.requestsPerSec))}`, fmt(r.tenementVsDirectRps), ''],
    ['proxy req/s vs min node proxy', `${fmtInt(med((x) => x.loaded.tenement.requestsPerSec))} req/s`, `nodemin ${fmtInt(med((x) => x.loaded.nodemin.requestsPerSec))}`, fmt(r.tenementVsNodeminRps), ''],
    ['proxy CPU per request vs nginx', `${fmt(med((x) => x.loaded.tenement.proxyCpuUsPerReq ?? NaN), 1)} us`, `nginx ${fmt(med((x) => x.loaded.nginx.proxyCpuUsPerReq ?? NaN), 1)} us`, fmt(r.tenementVsNginxCpu), ''],
    ['proxy CPU per request vs min node', `${fmt(med((x) => x.loaded.tenement.proxyCpuUsPerReq ?? NaN), 1)} us`, `nodemin ${fmt(med((x) => x.loaded.nodemin.proxyCpuUsPerReq ?? NaN), 1)} us`, fmt(r.tenementVsNodeminCpu), ''],
    ['nginx req/s vs direct', `${fmtInt(med((x) => x.loaded.nginx.requestsPerSec))} req/s`, `direct ${fmtInt(med((x) => x.loaded.direct.requestsPerSec))}`, fmt(r.nginxVsDirectRps), ''],
    [`proxy added p50 (${c})`, `+${fmt(r.tenementAddedP50Ms)} ms`, `direct p50 ${fmt(med((x) => x.loaded.direct.p50Ms))} ms`, fmt(med((x) => x.loaded.tenement.p50Ms / x.loaded.direct.p50Ms)), '+ < 0.5 ms'],
    [`nginx added p50 (${c})`, `+${fmt(r.nginxAddedP50Ms)} ms`, `direct p50 ${fmt(med((x) => x.loaded.direct.p50Ms))} ms`, fmt(med((x) => x.loaded.nginx.p50Ms / x.loaded.direct.p50Ms)), ''],
    [`proxy added p99 (${c})`, `+${fmt(r.tenementAddedP99Ms)} ms`, `direct p99 ${fmt(med((x) => x.loaded.direct.p99Ms))} ms`, fmt(med((x) => x.loaded.tenement.p99Ms / x.loaded.direct.p99Ms)), ''],
    ['proxy added p50 (c1)', `+${fmt(r.tenementAddedP50MsSingle, 3)} ms`, `direct p50 ${fmt(med((x) => x.single.direct.p50Ms), 3)} ms`, fmt(med((x) => x.single.tenement.p50Ms / x.single.direct.p50Ms)), ''],
    ['nginx added p50 (c1)', `+${fmt(r.nginxAddedP50MsSingle, 3)} ms`, `direct p50 ${fmt(med((x) => x.single.direct.p50Ms), 3)} ms`, fmt(med((x) => x.single.nginx.p50Ms / x.single.direct.p50Ms)), ''],
  );
  goals.push(...proxy.goals);
}
if (otel) {
  const r = otel.ratios;
  const med = (pick: (round: OtelBenchResult['rounds'][number]) => number): number => median(otel!.rounds.map(pick));
  rows.push(
    ['proxy req/s, tracing on vs off', `${fmtInt(med((x) => x.loaded.on.requestsPerSec))} req/s`, `off ${fmtInt(med((x) => x.loaded.off.requestsPerSec))}`, fmt(r.onVsOffRps), '>= 0.85'],
    ['proxy CPU per request, tracing on vs off', `${fmt(med((x) => x.loaded.on.proxyCpuUsPerReq), 1)} us`, `off ${fmt(med((x) => x.loaded.off.proxyCpuUsPerReq), 1)} us`, fmt(r.onVsOffCpu), ''],
    [`tracing added p50 (c${otel.connections})`, `+${fmt(r.addedP50Ms)} ms`, `off p50 ${fmt(med((x) => x.loaded.off.p50Ms))} ms`, '', ''],
    ['tracing added p50 (c1)', `+${fmt(r.addedP50MsSingle, 3)} ms`, `off p50 ${fmt(med((x) => x.single.off.p50Ms), 3)} ms`, '', ''],
    ['proxy req/s, hanging collector vs off', `${fmtInt(med((x) => x.loaded.hanging.requestsPerSec))} req/s`, `off ${fmtInt(med((x) => x.loaded.off.requestsPerSec))}`, fmt(r.hangingVsOffRps), ''],
  );
  goals.push(...otel.goals);
}
if (wake) {
  rows.push(['cold wake (median)', `${fmt(wake.tenementMedianMs, 1)} ms`, `bare start ${fmt(wake.bareMedianMs, 1)} ms`, fmt(wake.ratio), '<= 1.15']);
  goals.push(...wake.goals);
}
if (footprint) {
  rows.push(
    ['RSS, idle', `${fmt(footprint.emptyMb, 1)} MB`, `node ${fmt(footprint.nodeMb, 1)} MB`, fmt(footprint.emptyMb / footprint.nodeMb), '<= 60 MB'],
    [`RSS, ${footprint.instances} hibernated`, `${fmt(footprint.fullMb, 1)} MB`, `0 instances ${fmt(footprint.emptyMb, 1)} MB`, fmt(footprint.fullMb / footprint.emptyMb), '<= 100 MB'],
    ['per hibernated instance', `${fmt(footprint.perInstanceBytes, 0)} B RSS`, `${fmt(footprint.heapPerInstanceKb * 1024, 0)} B heap`, '', ''],
  );
  goals.push(...footprint.goals);
}
if (logs) {
  const rare = logs.searches[0]!;
  rows.push([`log search, rare word (${logs.lines / 1e6}M lines)`, `${fmt(rare.ftsMs, 2)} ms`, `LIKE scan ${fmt(rare.likeMs ?? NaN, 1)} ms`, fmt(rare.ftsMs / (rare.likeMs ?? NaN), 4), '< 1000 ms']);
  goals.push(...logs.goals);
}
if (isolation) {
  const base = isolation.tiers.find((t) => t.tier === 'process');
  for (const t of isolation.tiers) {
    if (t.tier === 'process' || !base) continue;
    rows.push([`${t.tier} wake (median)`, `${fmt(t.wakeMedianMs, 0)} ms`, `process ${fmt(base.wakeMedianMs, 0)} ms`, fmt(t.wakeMedianMs / base.wakeMedianMs), '']);
  }
  goals.push(...isolation.goals);
}
if (wasm) {
  const c = wasm.c;
  rows.push(
    ['wasm C cold start (hibernated -> 200)', `${fmt(c.coldStartMs.p50, 2)} ms`, `warm ${fmt(c.warmProxyMs.p50, 2)} ms`, fmt(c.coldStartMs.p50 / c.warmProxyMs.p50), '< 10 ms'],
    ['wasm C run via pool vs in-thread', `${fmt(c.poolRunMs.p50, 3)} ms`, `in-thread ${fmt(c.inThreadRunMs.p50, 3)} ms`, fmt(c.poolRunMs.p50 / c.inThreadRunMs.p50), '+ < 1 ms'],
  );
  goals.push(...wasm.goals);
}
if (cli) {
  for (const c of cli.cases.filter((x) => x.name === 'ten --help' || x.name.startsWith('ten ps --server'))) {
    const compiled = cli.measured.startsWith('compiled');
    rows.push(
      compiled
        ? [`${c.name} (median, compiled)`, `${fmt(c.medianMs, 0)} ms`, `node ${fmt(cli.nodeMs, 0)} ms`, fmt(c.vsNode), '<= 1.3']
        : [`${c.name} (median, sources)`, `${fmt(c.medianMs, 0)} ms`, `node+tsx ${fmt(cli.tsxMs, 0)} ms`, fmt(c.vsTsx), c.name === 'ten --help' ? '<= 1.5' : ''],
    );
  }
  goals.push(...cli.goals);
}
if (lb) {
  const r = lb.ratios;
  const p99 = (rule: 'weighted' | 'p2c'): number => median(lb!.rounds.map((round) => round.samples[rule].p99Ms));
  const rps = (rule: 'weighted' | 'p2c'): number => median(lb!.rounds.map((round) => round.samples[rule].requestsPerSec));
  rows.push(
    [`lb p99, 1 of 3 slowed ${lb.slowMs} ms: p2c vs weighted`, `${fmt(p99('p2c'))} ms`, `weighted ${fmt(p99('weighted'))} ms`, fmt(r.p2cVsWeightedP99), '< 1'],
    ['lb p99: least-requests vs weighted', '', '', fmt(r.leastVsWeightedP99), ''],
    ['lb req/s: p2c vs weighted', `${fmtInt(rps('p2c'))} req/s`, `weighted ${fmtInt(rps('weighted'))}`, fmt(r.p2cVsWeightedRps), ''],
  );
  goals.push(...lb.goals);
}
if (autoscaleResult) goals.push(...autoscaleResult.goals);
if (discoveryResult) {
  const r = discoveryResult.ratios;
  const p50 = (pick: (round: DiscoveryBenchResult['rounds'][number]) => number): string => `${fmt(median(discoveryResult!.rounds.map(pick)), 3)} ms`;
  rows.push(
    ['DNS lookup p50, discovery vs dns-packet echo', p50((x) => x.dns.discovery.p50Ms), `echo ${p50((x) => x.dns.echo.p50Ms)}`, fmt(r.dnsP50), '<= 1.5'],
    ['GET p50 by name vs by tenant host', p50((x) => x.http.byName.p50Ms), `by host ${p50((x) => x.http.byHost.p50Ms)}`, fmt(r.httpP50), '<= 1.2'],
  );
  goals.push(...discoveryResult.goals);
}
if (suspend) goals.push(...suspend.goals);
if (migrate) goals.push(...migrate.goals);

if (soak) {
  const first = soak.samples[0];
  const last = soak.samples[soak.samples.length - 1];
  rows.push(['soak errors', `${fmtInt(soak.errors)} of ${fmtInt(soak.requests)}`, `raced deletions ${fmtInt(soak.raced)}`, '', '0']);
  if (first && last) rows.push(['soak RSS, last vs first sample', `${fmt(last.rssMb, 1)} MB`, `${fmt(first.rssMb, 1)} MB`, fmt(last.rssMb / first.rssMb), '']);
  goals.push(...soak.goals);
}

if (fleet) {
  rows.push(['fleet: forwarded request p50', `${fmt(fleet.forwardedP50Ms)} ms`, `local ${fmt(fleet.localP50Ms)} ms`, fmt(fleet.ratio), '+1 ms']);
  rows.push(['fleet: failover after kill -9 (median)', `${fmt(median(fleet.failoverMs), 0)} ms`, '', '', '10 s']);
}

out(`== summary (${fmt((Date.now() - started) / 1000, 0)} s) ==`);
if (rows.length > 0) out(table(['figure', 'tenement', 'baseline (same run)', 'ratio', 'goal'], rows));
if (goals.length > 0) {
  out('');
  for (const goal of goals) out(`${goal.met ? 'MET ' : 'MISS'}  ${goal.name}: ${goal.measured} (goal ${goal.goal})`);
}
if (proxy?.warnings.length) out(`\n${proxy.warnings.length} proxy warning(s): see above`);
for (const failure of failures) out(`FAILED  ${failure}`);

const resultsDir = path.join(ROOT, '.bench-tmp');
mkdirSync(resultsDir, { recursive: true });
writeJson(path.join(resultsDir, 'bench-results.json'), {
  at: new Date().toISOString(),
  node: process.version,
  proxy,
  edge,
  otel,
  wake,
  footprint,
  logs,
  isolation,
  wasm,
  cli,
  soak,
  fleet,
  lb,
  suspend,
  migrate,
  autoscale: autoscaleResult,
  discovery: discoveryResult,
  goals,
  failures,
});
process.exitCode = failures.length > 0 ? 1 : 0;
