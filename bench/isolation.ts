/**
 * Isolation: what each tier costs against the process tier, in one run, with one app (bench/fixtures/hello.mjs)
 * behind one kernel booted with the plugins `ten serve` loads plus every runtime in runtimes/ (cli/tier-runtimes.ts:
 * the sandbox and microvm runtimes are covered as soon as they exist). Per tier:
 *   - spawn -> ready: kernel.spawnInstance of a fresh instance until it is ready (median)
 *   - wake -> first response: a hibernated instance, one GET through the proxy (median)
 *   - memory per idle instance: RSS and PSS of every process of the instance (its cgroup's processes, else the
 *     leader's process tree), after it has answered and sat idle; and the host's MemAvailable drop with several
 *     idle instances up, divided by their number (what the host really gives each one)
 *   - proxied request p50: sequential keep-alive GETs through the proxy, rounds interleaved across tiers
 * Samples are interleaved across tiers (drift hits all alike). Tiers the host cannot run are skipped with the
 * reason; wasm instances are WebAssembly modules, not this node app (bench/wasm.ts covers them).
 *
 *   node --import tsx bench/isolation.ts          (or: npm run bench -- isolation)
 *
 * Env: BENCH_ISOLATION_SAMPLES (7; the microvm tier takes at most 3: an emulated boot takes seconds),
 *      BENCH_ISOLATION_REQUESTS (300 per tier, in 3 rounds),
 *      BENCH_ISOLATION_TIERS (comma-separated tiers to measure, e.g. `process,sandbox`; default all),
 *      BENCH_SANDBOX_WARM (the sandbox runtime's warmSandboxes option; default: the runtime's default, off).
 */
import { readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { pluginsWithAllRuntimes } from '../cli/tier-runtimes.ts';
import { TIERS, type ServiceInput, type Tier } from '../core/config/schema.ts';
import type { Instance } from '../core/instance.ts';
import type { PluginDefinition, PluginEntry } from '../core/plugin.ts';
import { createTestKernel, type TestKernel } from '../core/test-kernel.ts';
import { BENCH_DIR, type Goal, MB, descendants, fmt, isMain, makeTempDir, median, percentile, removeTempDir, sleep, table } from './lib.ts';

const APP = path.join(BENCH_DIR, 'fixtures', 'hello.mjs');
const IDLE_SETTLE_MS = 1_000;
/**
 * Idle instances started per tier to read the host's MemAvailable before and after: RSS counts pages shared with
 * other instances (the runsc binary, node's code) once per process, PSS splits them only within one instance;
 * what several idle instances really take from the host is the honest "memory added per instance".
 */
const HOST_SAMPLE_INSTANCES = 4;
/** Not a node app: the wasm tier runs WebAssembly modules (bench/wasm.ts). */
const NOT_THIS_APP: ReadonlySet<Tier> = new Set(['wasm']);

export interface TierFigures {
  tier: Tier;
  note: string | null;
  samples: number;
  spawnMs: number[];
  wakeMs: number[];
  rssBytes: number;
  pssBytes: number;
  /** Host memory (MemAvailable) the tier's idle instances took, per instance, with HOST_SAMPLE_INSTANCES of them up. */
  hostBytes: number | null;
  processes: number;
  requestMs: number[];
  spawnMedianMs: number;
  wakeMedianMs: number;
  requestP50Ms: number;
}

export interface IsolationResult {
  tiers: TierFigures[];
  skipped: Array<{ tier: Tier; reason: string }>;
  goals: Goal[];
}

const service = (tier: Tier): string => `iso-${tier}`;

/**
 * Pids of the instance: its cgroup's processes when it has one of ours, else the leader and its descendants, plus,
 * for a sandbox started in a warm sandbox, that sandbox's sentry tree and root gofer (not below the leader).
 */
function instancePids(leader: number): number[] {
  try {
    const membership = readFileSync(`/proc/${leader}/cgroup`, 'utf8');
    const pids = /^\d+:pids:(\/tenement\/.+)$/m.exec(membership)?.[1];
    if (pids) {
      const listed = readFileSync(path.join('/sys/fs/cgroup/pids', pids, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
      if (listed.length > 0) return listed;
    }
  } catch {
    // No v1 pids hierarchy (or the process is gone): the process tree below.
  }
  return [...new Set([leader, ...descendants(leader), ...warmSandboxPids(leader)])];
}

/**
 * The leader is `runsc … --root=STATE … run … ID`: when runsc's state file for ID names another sandbox (a warm
 * one the container joined), that sandbox's sentry, its descendants and its gofer, from its own state file.
 */
function warmSandboxPids(leader: number): number[] {
  try {
    const args = readFileSync(`/proc/${leader}/cmdline`, 'utf8').split('\0').filter(Boolean);
    const state = args.find((arg) => arg.startsWith('--root='))?.slice('--root='.length);
    const id = args.at(-1);
    if (!state || !id || !args.includes('run')) return [];
    const own = readdirSync(state).find((name) => name.startsWith(`${id}_sandbox:`) && name.endsWith('.state'));
    const sandbox = own?.slice(`${id}_sandbox:`.length, -'.state'.length);
    if (!sandbox || sandbox === id) return [];
    const meta = JSON.parse(readFileSync(path.join(state, `${sandbox}_sandbox:${sandbox}.state`), 'utf8')) as { goferPid?: number; sandbox?: { pid?: number } };
    const sentry = meta.sandbox?.pid;
    if (!sentry) return [];
    return [sentry, ...descendants(sentry), ...(meta.goferPid ? [meta.goferPid] : [])];
  } catch {
    return [];
  }
}

function memAvailable(): number {
  return Number(/^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024;
}

/** Host memory per idle instance of `tier`: MemAvailable before and after starting several, each answered once. */
async function hostMemoryPerInstance(kernel: TestKernel, port: number, tier: Tier): Promise<number | null> {
  await sleep(IDLE_SETTLE_MS);
  const before = memAvailable();
  const started: Instance[] = [];
  try {
    for (let i = 0; i < HOST_SAMPLE_INSTANCES; i++) {
      const instance = await kernel.spawnInstance(service(tier), `m${i}`);
      if (instance.state !== 'running') return null;
      started.push(instance);
      await timedGet(port, `m${i}.${service(tier)}.localhost`);
    }
    await sleep(IDLE_SETTLE_MS * 2);
    return (before - memAvailable()) / HOST_SAMPLE_INSTANCES;
  } finally {
    for (const instance of started) await kernel.removeInstance(instance);
  }
}

/** RSS and PSS (shared pages split between their users) of some processes, from smaps_rollup. */
function memoryOf(pids: readonly number[]): { rss: number; pss: number } {
  let rss = 0;
  let pss = 0;
  for (const pid of pids) {
    try {
      const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
      rss += Number(/^Rss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0) * 1024;
      pss += Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0) * 1024;
    } catch {
      // Gone.
    }
  }
  return { rss, pss };
}

/** One GET through the proxy on a fresh connection; ms to the full answer. */
function timedGet(port: number, host: string, agent: http.Agent | false = false): Promise<number> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent, timeout: 60_000 }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(performance.now() - started) : reject(new Error(`${host}: HTTP ${res.statusCode}`))));
    });
    req.once('timeout', () => req.destroy(new Error(`${host}: no answer within 60 s`)));
    req.once('error', reject);
    req.end();
  });
}

async function spawnOnce(kernel: TestKernel, tier: Tier, id: string): Promise<number> {
  const started = performance.now();
  const instance = await kernel.spawnInstance(service(tier), id);
  const ms = performance.now() - started;
  if (instance.state !== 'running') throw new Error(`${tier}: ${instance.key} did not start: ${instance.lastError ?? instance.state}`);
  await kernel.removeInstance(instance, 'benchmark');
  return ms;
}

async function wakeOnce(kernel: TestKernel, port: number, instance: Instance): Promise<number> {
  await kernel.hibernate(instance, 'benchmark');
  if (instance.state !== 'hibernated') throw new Error(`${instance.key} is ${instance.state} after hibernate()`);
  await sleep(100);
  return timedGet(port, `w.${instance.service}.localhost`);
}

export async function runIsolationBench(options: { samples?: number; requests?: number; log?: (line: string) => void } = {}): Promise<IsolationResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const samples = options.samples ?? Number(process.env.BENCH_ISOLATION_SAMPLES ?? 7);
  const requests = options.requests ?? Number(process.env.BENCH_ISOLATION_REQUESTS ?? 300);
  const only = process.env.BENCH_ISOLATION_TIERS ? new Set(process.env.BENCH_ISOLATION_TIERS.split(',').map((t) => t.trim())) : null;
  const dir = makeTempDir('isolation');
  const loaded = await pluginsWithAllRuntimes({ exclude: ['auth-bearer'] });
  const { loadErrors } = loaded;
  // BENCH_SANDBOX_WARM=N: the sandbox runtime keeps N warm sandboxes (its warmSandboxes option; default off).
  const warm = process.env.BENCH_SANDBOX_WARM ? Number(process.env.BENCH_SANDBOX_WARM) : null;
  const plugins: PluginEntry[] = loaded.plugins.map((entry) =>
    warm !== null && !Array.isArray(entry) && (entry as PluginDefinition<never>).name === 'runtime-sandbox' ? [entry as PluginDefinition<never>, { warmSandboxes: warm }] : entry,
  );
  const services: Record<string, ServiceInput> = {};
  for (const tier of TIERS) {
    if (NOT_THIS_APP.has(tier)) continue;
    services[service(tier)] = {
      command: 'node',
      args: [APP],
      cwd: path.dirname(APP),
      isolation: tier,
      // A tier without a runtime would stop the kernel's start-up: it falls back, and is reported as skipped.
      ...(tier === 'process' ? {} : { fallback: ['process'] }),
      health: '/',
      idleTimeout: false,
      startupTimeout: tier === 'microvm' ? 120_000 : 30_000,
      restart: 'never',
    };
  }
  const kernel = await createTestKernel({ plugins, config: { settings: { dataDir: path.join(dir, 'data'), listen: '127.0.0.1' }, services } });
  const port = Number(new URL(kernel.url).port);
  const skipped: IsolationResult['skipped'] = [];
  const tiers: Tier[] = [];
  const notes = new Map<Tier, string | null>();
  for (const tier of TIERS) {
    if (NOT_THIS_APP.has(tier)) {
      skipped.push({ tier, reason: 'its instances are WebAssembly modules, not this node app (see bench/wasm.ts)' });
      continue;
    }
    if (only && !only.has(tier)) {
      skipped.push({ tier, reason: 'not in BENCH_ISOLATION_TIERS' });
      continue;
    }
    if ((kernel.hooks.spawn.get(tier)?.taps.length ?? 0) === 0) {
      skipped.push({ tier, reason: loadErrors.get(tier) ?? `no runtime (runtimes/${tier} is missing)` });
      continue;
    }
    const choice = kernel.tierOf(service(tier));
    if (choice.tier !== tier) {
      const hint = tier === 'microvm' && !process.env.TENEMENT_MICROVM_DIR ? ' (the bench runs in a temporary data dir: set TENEMENT_MICROVM_DIR to a prepared guest folder)' : '';
      skipped.push({ tier, reason: `${choice.fallbackReason ?? 'unavailable on this host'}${hint}` });
      continue;
    }
    const probe = await kernel.hooks.probe.get(tier)?.promise().catch(() => undefined);
    notes.set(tier, probe?.note ?? null);
    tiers.push(tier);
  }
  const samplesOf = (tier: Tier): number => (tier === 'microvm' ? Math.min(3, samples) : samples);
  try {
    log(`isolation: tiers ${tiers.join(', ')}${skipped.length ? `; skipped ${skipped.map((s) => s.tier).join(', ')}` : ''}; ${samples} samples each (microvm ${samplesOf('microvm')}), ${requests} proxied requests each`);
    const figures = new Map<Tier, { spawnMs: number[]; wakeMs: number[]; requestMs: number[] }>();
    for (const tier of tiers) figures.set(tier, { spawnMs: [], wakeMs: [], requestMs: [] });

    // Warm-up: one spawn per tier (file caches, tsx, a first guest boot), not counted.
    for (const tier of tiers) await spawnOnce(kernel, tier, 'warmup');
    for (let i = 0; i < samples; i++) {
      for (const tier of tiers) {
        if (i >= samplesOf(tier)) continue;
        figures.get(tier)!.spawnMs.push(await spawnOnce(kernel, tier, `s${i}`));
      }
      log(`  spawn sample ${i + 1}: ${tiers.filter((tier) => i < samplesOf(tier)).map((tier) => `${tier} ${fmt(figures.get(tier)!.spawnMs[i]!, 0)} ms`).join(', ')}`);
    }

    // One long-lived instance per tier for wakes, memory and request latency.
    const live = new Map<Tier, Instance>();
    for (const tier of tiers) {
      const instance = await kernel.spawnInstance(service(tier), 'w');
      if (instance.state !== 'running') throw new Error(`${tier}: ${instance.key} did not start: ${instance.lastError ?? instance.state}`);
      live.set(tier, instance);
    }
    await wakeOnce(kernel, port, live.get(tiers[0]!)!);
    for (let i = 0; i < samples; i++) {
      for (const tier of tiers) {
        if (i >= samplesOf(tier)) continue;
        figures.get(tier)!.wakeMs.push(await wakeOnce(kernel, port, live.get(tier)!));
      }
      log(`  wake sample ${i + 1}: ${tiers.filter((tier) => i < samplesOf(tier)).map((tier) => `${tier} ${fmt(figures.get(tier)!.wakeMs[i]!, 0)} ms`).join(', ')}`);
    }

    // Every instance has just answered its wake request; let them settle, then read their memory.
    await sleep(IDLE_SETTLE_MS);
    const memory = new Map<Tier, { rss: number; pss: number; processes: number }>();
    for (const tier of tiers) {
      const pid = live.get(tier)!.handle?.pid;
      if (!pid) throw new Error(`${tier}: the live instance has no pid`);
      const pids = instancePids(pid);
      memory.set(tier, { ...memoryOf(pids), processes: pids.length });
    }

    const hostMemory = new Map<Tier, number | null>();
    for (const tier of tiers) {
      // An emulated microVM boot takes seconds each: its figure is the PSS one.
      hostMemory.set(tier, tier === 'microvm' ? null : await hostMemoryPerInstance(kernel, port, tier));
      log(`  host memory per idle ${tier} instance (${HOST_SAMPLE_INSTANCES} up): ${hostMemory.get(tier) === null ? 'n/a' : `${fmt(hostMemory.get(tier)! / MB, 1)} MB`}`);
    }

    const rounds = 3;
    const agents = new Map(tiers.map((tier) => [tier, new http.Agent({ keepAlive: true, maxSockets: 1 })]));
    for (let round = 0; round < rounds; round++) {
      for (const tier of tiers) {
        const host = `w.${service(tier)}.localhost`;
        const agent = agents.get(tier)!;
        for (let n = 0; n < 20; n++) await timedGet(port, host, agent); // warm the connection and the JIT
        for (let n = 0; n < Math.ceil(requests / rounds); n++) figures.get(tier)!.requestMs.push(await timedGet(port, host, agent));
      }
    }
    for (const agent of agents.values()) agent.destroy();

    const results: TierFigures[] = tiers.map((tier) => {
      const f = figures.get(tier)!;
      const m = memory.get(tier)!;
      return {
        tier,
        note: notes.get(tier) ?? null,
        samples: samplesOf(tier),
        ...f,
        rssBytes: m.rss,
        pssBytes: m.pss,
        hostBytes: hostMemory.get(tier) ?? null,
        processes: m.processes,
        spawnMedianMs: median(f.spawnMs),
        wakeMedianMs: median(f.wakeMs),
        requestP50Ms: percentile(f.requestMs, 50),
      };
    });
    return { tiers: results, skipped, goals: goalsOf(results) };
  } finally {
    await kernel.close();
    removeTempDir(dir);
  }
}

/** The issue's goals: namespace within 1.10x of process on every figure; sandbox wake <= 2.5x and < 50 MB added. */
function goalsOf(results: readonly TierFigures[]): Goal[] {
  const base = results.find((r) => r.tier === 'process');
  if (!base) return [];
  const goals: Goal[] = [];
  const ns = results.find((r) => r.tier === 'namespace');
  if (ns) {
    const ratios: Array<[string, number]> = [
      ['spawn', ns.spawnMedianMs / base.spawnMedianMs],
      ['wake', ns.wakeMedianMs / base.wakeMedianMs],
      ['memory (PSS)', ns.pssBytes / base.pssBytes],
      ['request p50', ns.requestP50Ms / base.requestP50Ms],
    ];
    for (const [name, ratio] of ratios) goals.push({ name: `namespace ${name} vs process`, measured: `${fmt(ratio)}x`, goal: '<= 1.10x', met: ratio <= 1.1 });
  }
  const sandbox = results.find((r) => r.tier === 'sandbox');
  if (sandbox) {
    const wake = sandbox.wakeMedianMs / base.wakeMedianMs;
    const added = (sandbox.rssBytes - base.rssBytes) / MB;
    goals.push({ name: 'sandbox wake vs process', measured: `${fmt(wake)}x (${fmt(sandbox.wakeMedianMs, 0)} vs ${fmt(base.wakeMedianMs, 0)} ms)`, goal: '<= 2.5x', met: wake <= 2.5 });
    goals.push({ name: 'sandbox memory added per instance (RSS, shared pages counted per process)', measured: `+${fmt(added, 1)} MB`, goal: '< 50 MB', met: added < 50 });
    if (sandbox.hostBytes !== null && base.hostBytes !== null) {
      const hostAdded = (sandbox.hostBytes - base.hostBytes) / MB;
      goals.push({ name: `sandbox host memory added per idle instance (MemAvailable, ${HOST_SAMPLE_INSTANCES} up)`, measured: `+${fmt(hostAdded, 1)} MB`, goal: '< 50 MB', met: hostAdded < 50 });
    }
  }
  return goals;
}

export function formatIsolation(result: IsolationResult): string {
  const base = result.tiers.find((r) => r.tier === 'process');
  const ratio = (value: number, of: number | undefined): string => (of ? `${fmt(value / of)}x` : 'n/a');
  const rows = result.tiers.map((r) => [
    r.note ? `${r.tier} *` : r.tier,
    String(r.samples),
    `${fmt(r.spawnMedianMs, 0)} ms`,
    `${fmt(r.wakeMedianMs, 0)} ms`,
    `${fmt(r.rssBytes / MB, 1)} MB`,
    `${fmt(r.pssBytes / MB, 1)} MB`,
    r.hostBytes === null ? 'n/a' : `${fmt(r.hostBytes / MB, 1)} MB`,
    base ? `${r.rssBytes >= base.rssBytes ? '+' : ''}${fmt((r.rssBytes - base.rssBytes) / MB, 1)} MB` : 'n/a',
    String(r.processes),
    `${fmt(r.requestP50Ms, 3)} ms`,
    [ratio(r.spawnMedianMs, base?.spawnMedianMs), ratio(r.wakeMedianMs, base?.wakeMedianMs), ratio(r.pssBytes, base?.pssBytes), ratio(r.requestP50Ms, base?.requestP50Ms)].join(' '),
  ]);
  return [
    '== isolation: bench/fixtures/hello.mjs in every tier, one kernel ==',
    table(['tier', 'n', 'spawn->ready', 'wake->1st resp', 'RSS/instance', 'PSS/instance', 'host mem/inst', 'RSS vs process', 'procs', 'proxied p50', 'vs process: spawn wake PSS p50'], rows),
    ...result.tiers.filter((r) => r.note).map((r) => `* ${r.tier}: ${r.note}`),
    ...result.skipped.map((s) => `skipped ${s.tier}: ${s.reason}`),
  ].join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runIsolationBench();
  process.stdout.write(`\n${formatIsolation(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'} ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
