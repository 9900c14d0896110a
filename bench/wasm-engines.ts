/**
 * V8 against wasmtime on the same artifacts, in one run: examples/wasm-c (the C CGI function) and the test guest's
 * runaway loop. Figures per engine and the ratio wasmtime/V8: compile, cold load, instantiate, in-thread run,
 * cold start (hibernated -> 200), warm GET p50/p99 and req/s through the kernel's proxy (what `ten serve` runs),
 * memory per live instance, and how long after its deadline a runaway is answered (and what the next call pays).
 *
 *   node --expose-gc --import tsx bench/wasm-engines.ts        (also printed by bench/wasm.ts)
 *
 * Needs clang with wasi-libc, the wasmtime library (npm run fetch:wasmtime), and wrk for the req/s rows.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { defaultPlugins } from '../cli/default-plugins.ts';
import { createTestKernel } from '../core/test-kernel.ts';
import { capMemory, compileModule } from '../core/wasm/engine.ts';
import { ModuleCache } from '../core/wasm/module-cache.ts';
import { WasmPool, type CompiledModule } from '../core/wasm/pool.ts';
import { runWasiCommand } from '../core/wasm/wasi-run.ts';
import { INSTANCE_SIZE, type Ptr } from '../core/wasm/wasmtime/ffi.ts';
import { artifactPath, claimTickerSlot, ensureArtifact, ensureArtifacts, wasmtimeEngine } from '../core/wasm/wasmtime/host.ts';
import { runWasmtimeCommand } from '../core/wasm/wasmtime/run.ts';
import { wasmtimeStatus } from '../core/wasm/wasmtime/library.ts';
import { ROOT, findBinary, fmt, httpGet, isMain, makeTempDir, median, removeTempDir, runWrk, sleep, spread, table, timeEach, waitForOk, type Spread } from './lib.ts';
import type { Kernel } from '../core/kernel.ts';

const CAP_PAGES = 512;
const ENGINES = ['v8', 'wasmtime'] as const;
type Engine = (typeof ENGINES)[number];

export interface EngineFigures {
  compileMs: number;
  /** Loading compiled code a restarted server already has: V8 compiles again (Node cannot persist it); wasmtime deserializes its artifact. */
  reloadMs: number;
  instantiateUs: Spread;
  inThreadRunMs: Spread;
  coldStartMs: Spread;
  /** The same GET on a new connection after the same idle pause, not hibernated (interleaved with the cold ones). */
  idleWarmMs: Spread;
  /** Per cycle, cold minus idle-warm: what the wake adds to a first request (p50 of the cycles). */
  wakeAddedMs: number;
  /** The same GET to the native Node server after the same pause, in the same cycles: what any request pays after idle. */
  nativeIdleMs: Spread;
  /** Per cycle, cold minus the native idle GET: what a hibernated function costs over a running native server (p50). */
  coldOverNativeMs: number;
  /** Per cycle, idle-warm minus the native idle GET: what the wasm path itself pays after a pause (p50). */
  idleOverNativeMs: number;
  /** In the server: the instance's `waking` to its `woken` event (allocate, spawn, ready, running). */
  wakeMs: Spread;
  warmProxyMs: Spread;
  /** wrk -c1 (one request at a time on a kept-alive connection) p50 through the proxy, median of 5 rounds. */
  warmC1Ms: number;
  /** warmC1Ms minus a native Node server's through the same proxy, per interleaved round (median). */
  warmAddedMs: number;
  proxyRps: number | null;
  /** RSS per instance alive at once (1,000 instantiated, kept), KB; NaN without gc() (node --expose-gc). */
  rssPerInstanceKb: number;
  /** A runaway with a 200 ms deadline: answered this long after its deadline, ms (median of 5). */
  runawayOvershootMs: number;
  /** The next call on the pool right after (V8: its worker is being replaced), ms. */
  afterRunawayMs: number;
}

export interface EngineComparison {
  figures: Record<Engine, EngineFigures>;
  /** The native Node server's wrk -c1 p50 through the same proxy (median of the rounds), ms. */
  nativeC1Ms: number | null;
  moduleBytes: number;
}

/** A native Node server answering what examples/wasm-c answers, behind the same proxy: the warm baseline. */
const NATIVE_APP = `import http from 'node:http';
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('Hello, ' + process.env.TENEMENT_INSTANCE + '!\\n');
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

/** The pause after a hibernation (and before an idle-warm request): the wake must not overlap the stop. */
const IDLE_MS = 100;

/**
 * Cold starts interleaved with idle-warm requests: per cycle, hibernate, pause, GET (cold); pause, GET (warm, the
 * same pause and a new connection); pause, the same GET to the native server. Cold minus warm is what the wake
 * adds; the idle pause itself (cold caches, sleeping threads, a new connection, this process's own client) costs
 * the warm request as much, and the native server's request says how much of that any request pays here. The
 * server-side wake is timed from the instance's events.
 */
async function coldCycles(kernel: Kernel, service: string, port: number, host: string, nativeHost: string, cycles: number) {
  const instance = kernel.instances.get(service, 'bench')!;
  let wakingAt = 0;
  const wakes: number[] = [];
  const unwatch = kernel.watchEvents((event) => {
    if (event.instance !== instance.key) return;
    if (event.type === 'waking') wakingAt = performance.now();
    else if (event.type === 'woken') wakes.push(performance.now() - wakingAt);
  });
  const cold: number[] = [];
  const warm: number[] = [];
  const added: number[] = [];
  const native: number[] = [];
  const coldOverNative: number[] = [];
  const idleOverNative: number[] = [];
  try {
    for (let cycle = 0; cycle <= cycles; cycle++) {
      await kernel.hibernate(instance, 'benchmark');
      await sleep(IDLE_MS);
      let started = performance.now();
      const reply = await httpGet(port, host, '/');
      const coldMs = performance.now() - started;
      if (reply.status !== 200) throw new Error(`cold request answered ${reply.status}: ${reply.body.slice(0, 200)}`);
      await sleep(IDLE_MS);
      started = performance.now();
      await httpGet(port, host, '/');
      const warmMs = performance.now() - started;
      await sleep(IDLE_MS);
      started = performance.now();
      await httpGet(port, nativeHost, '/');
      const nativeMs = performance.now() - started;
      if (cycle === 0) continue;
      cold.push(coldMs);
      warm.push(warmMs);
      added.push(coldMs - warmMs);
      native.push(nativeMs);
      coldOverNative.push(coldMs - nativeMs);
      idleOverNative.push(warmMs - nativeMs);
    }
  } finally {
    unwatch();
  }
  return { cold, warm, added, native, coldOverNative, idleOverNative, wakes: wakes.slice(1) };
}

function build(source: string, out: string): void {
  execFileSync('clang', ['--target=wasm32-wasi', '-O2', '-s', source, '-o', out], { stdio: 'pipe' });
}

/** RSS growth per instance while `count` are alive at once (after a full GC on both sides). */
function rssPerInstance(count: number, make: () => unknown, release: (made: unknown[]) => void): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return NaN;
  gc();
  const before = process.memoryUsage.rss();
  const made: unknown[] = [];
  for (let i = 0; i < count; i++) made.push(make());
  gc();
  const after = process.memoryUsage.rss();
  release(made);
  return (after - before) / count / 1024;
}

export async function runEngineComparison(options: { log?: (line: string) => void } = {}): Promise<EngineComparison | null> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const status = wasmtimeStatus();
  if (!status.usable) {
    log(`  engines: wasmtime not usable (${status.reason}): comparison skipped`);
    return null;
  }
  const samples = Number(process.env.BENCH_WASM_SAMPLES ?? 300);
  const cycles = Number(process.env.BENCH_WASM_CYCLES ?? 15);
  const dir = makeTempDir('wasm-engines');
  const handler = path.join(dir, 'handler.wasm');
  const guest = path.join(dir, 'guest.wasm');
  build(path.join(ROOT, 'examples', 'wasm-c', 'handler.c'), handler);
  build(path.join(ROOT, 'test', 'fixtures', 'wasm', 'guest.c'), guest);
  const bytes = new Uint8Array(readFileSync(handler));
  const capped = capMemory(bytes, CAP_PAGES);
  const engine = wasmtimeEngine();
  if (!engine.shared) throw new Error(engine.reason);
  const w = engine.lib;
  const enginePtr = BigInt(engine.shared.engine);
  const input = { args: ['hello-c'], env: { REQUEST_METHOD: 'GET', PATH_INFO: '/', DATA_DIR: '/data' }, stdin: new Uint8Array(), dataDir: null, preopenAs: '/data', capPages: CAP_PAGES };
  const figures = {} as Record<Engine, EngineFigures>;

  // Code: compile, and what a restart pays to have it again.
  let started = performance.now();
  const v8Module = compileModule(bytes, CAP_PAGES);
  const v8CompileMs = performance.now() - started;
  const artifact = artifactPath(path.join(dir, 'cache'), 'bench');
  started = performance.now();
  ensureArtifact(capped, artifact);
  const wtCompileMs = performance.now() - started;
  const out = Buffer.alloc(8);
  const deserialize = () => {
    if (w.wasmtime_module_deserialize_file(enginePtr, artifact, out)) throw new Error('deserialize failed');
    return out.readBigUInt64LE(0);
  };
  const reloads = await timeEach(20, () => w.wasmtime_module_delete(deserialize()));
  const v8Reloads = await timeEach(5, () => compileModule(bytes, CAP_PAGES));

  // Instantiation alone: V8 links node:wasi's imports and makes an Instance; wasmtime makes a store with a WASI
  // context and instantiates the pre-linked module.
  const { WASI } = await import('node:wasi');
  const v8Instance = () => {
    const base = new WASI({ version: 'preview1', returnOnExit: true }).getImportObject() as { wasi_snapshot_preview1: Record<string, (...args: number[]) => number> };
    const wrapped: Record<string, (...args: number[]) => number> = {};
    for (const [name, fn] of Object.entries(base.wasi_snapshot_preview1)) wrapped[name] = (...args: number[]) => fn(...args);
    return new WebAssembly.Instance(v8Module, { wasi_snapshot_preview1: wrapped });
  };
  const module = deserialize();
  const linker = w.wasmtime_linker_new(enginePtr) as Ptr;
  w.wasmtime_linker_define_wasi(linker);
  const preOut = Buffer.alloc(8);
  w.wasmtime_linker_instantiate_pre(linker, module, preOut);
  const pre = preOut.readBigUInt64LE(0);
  const wtInstance = (): Ptr => {
    const store = w.wasmtime_store_new(enginePtr, 0n, 0n) as Ptr;
    const context = w.wasmtime_store_context(store) as Ptr;
    w.wasmtime_context_set_epoch_deadline(context, 1_000_000n);
    w.wasmtime_context_set_wasi(context, w.wasi_config_new());
    const instance = Buffer.alloc(INSTANCE_SIZE);
    const trap = Buffer.alloc(8);
    if (w.wasmtime_instance_pre_instantiate(pre, context, instance, trap)) throw new Error('instantiate failed');
    return store;
  };
  const v8Inst = (await timeEach(samples, v8Instance)).map((ms) => ms * 1000);
  const wtInst = (await timeEach(samples, () => w.wasmtime_store_delete(wtInstance()))).map((ms) => ms * 1000);
  const v8Rss = rssPerInstance(1000, v8Instance, () => undefined);
  const wtRss = rssPerInstance(1000, wtInstance, (made) => made.forEach((store) => w.wasmtime_store_delete(store as Ptr)));
  w.wasmtime_instance_pre_delete(pre);
  w.wasmtime_linker_delete(linker);
  w.wasmtime_module_delete(module);

  // A whole request in this thread: instantiate, _start, CGI output captured.
  const devNull = openSync('/dev/null', 'r+');
  const v8Run = await timeEach(samples, () => runWasiCommand(v8Module, input, devNull));
  closeSync(devNull);
  // As served: the guest rewritten to count its open files through the adapter (files-adapter.ts).
  const served = ensureArtifacts(capped, path.join(dir, 'cache'), 'bench-served');
  const benchSlot = claimTickerSlot()!;
  const wtRun = await timeEach(samples, () => runWasmtimeCommand(engine.shared!, { ...input, hash: 'bench-served', ...served, deadlineAt: performance.timeOrigin + performance.now() + 5_000, deadlineMs: 5_000, slot: benchSlot, fuel: null }));

  // Runaways, through a pool: V8 terminates the worker at the deadline and starts another; wasmtime interrupts the guest.
  const pool = new WasmPool({ threads: 2 });
  const cache = new ModuleCache(path.join(dir, 'cache'));
  const runaway = { v8: [] as number[], wasmtime: [] as number[] };
  const after = { v8: [] as number[], wasmtime: [] as number[] };
  try {
    for (const name of ENGINES) {
      const code = await cache.load(guest, 256, name);
      const compiled = (code as { compiled: CompiledModule }).compiled;
      const call = (route: string, deadlineMs: number) =>
        pool.runWasi(compiled, { instanceKey: `runaway-${name}`, deadlineMs, args: ['guest'], env: { PATH_INFO: route }, stdin: new Uint8Array(), dataDir: null, preopenAs: '/data' });
      await call('/ok', 5_000);
      for (let i = 0; i < 5; i++) {
        const t = performance.now();
        const outcome = await call('/loop', 200);
        if (outcome.ok || outcome.kind !== 'timeout') throw new Error(`${name}: the runaway was not stopped at its deadline`);
        runaway[name].push(performance.now() - t - 200);
        const next = performance.now();
        // Both workers at once: on V8 one of them is the replacement being started.
        await Promise.all([call('/ok', 5_000), call('/ok', 5_000)]);
        after[name].push(performance.now() - next);
      }
    }
  } finally {
    await pool.close();
  }

  // Through the kernel's proxy (what `ten serve` runs): one service per engine, same module, and a native server.
  writeFileSync(path.join(dir, 'native.mjs'), NATIVE_APP);
  const kernel = await createTestKernel({
    plugins: defaultPlugins,
    config: {
      settings: { port: 0, listen: '127.0.0.1', dataDir: path.join(dir, 'data') },
      services: {
        ...Object.fromEntries(
          ENGINES.map((name) => [`c-${name}`, { isolation: 'wasm' as const, module: handler, limits: { memory: `${CAP_PAGES * 64}KiB` }, idleTimeout: false as const, wasm: { engine: name } }]),
        ),
        native: { command: 'node native.mjs', cwd: dir, idleTimeout: false as const, startupTimeout: '30s' },
      },
      instances: { ...Object.fromEntries(ENGINES.map((name) => [`c-${name}`, ['bench']])), native: ['bench'] },
      pluginOptions: { metrics: { processMetrics: false } },
    },
  });
  const port = Number(new URL(kernel.url).port);
  const wrk = findBinary('wrk');
  const http = {} as Record<Engine, { cycles: Awaited<ReturnType<typeof coldCycles>>; warm: number[]; rps: number[]; c1: number[]; added: number[] }>;
  const nativeC1: number[] = [];
  try {
    await waitForOk(port, 'bench.native.localhost', 30_000, 'the native server');
    for (const name of ENGINES) {
      const host = `bench.c-${name}.localhost`;
      await waitForOk(port, host, 30_000, host);
      http[name] = { cycles: await coldCycles(kernel, `c-${name}`, port, host, 'bench.native.localhost', cycles), warm: [], rps: [], c1: [], added: [] };
      http[name].warm = await timeEach(samples, () => httpGet(port, host, '/'));
    }
    // Interleaved rounds, medians: load from others on a shared machine shifts within seconds.
    // c1: one request at a time on a kept-alive connection; the native server's round just before each engine's.
    const c1 = (host: string) => runWrk({ binary: wrk!, port, host, threads: 1, connections: 1, seconds: 1 });
    for (let round = 0; round < 5 && wrk; round++) {
      for (const name of ENGINES) {
        const native = (await c1('bench.native.localhost')).p50Ms;
        nativeC1.push(native);
        const p50 = (await c1(`bench.c-${name}.localhost`)).p50Ms;
        http[name].c1.push(p50);
        http[name].added.push(p50 - native);
      }
    }
    for (let round = 0; round < 3 && wrk; round++) {
      for (const name of ENGINES) http[name].rps.push((await runWrk({ binary: wrk, port, host: `bench.c-${name}.localhost`, threads: 1, connections: 16, seconds: 2 })).requestsPerSec);
    }
  } finally {
    await kernel.close();
    removeTempDir(dir);
  }

  figures.v8 = {
    compileMs: v8CompileMs,
    reloadMs: median(v8Reloads),
    instantiateUs: spread(v8Inst),
    inThreadRunMs: spread(v8Run),
    coldStartMs: spread(http.v8.cycles.cold),
    idleWarmMs: spread(http.v8.cycles.warm),
    wakeAddedMs: median(http.v8.cycles.added),
    nativeIdleMs: spread(http.v8.cycles.native),
    coldOverNativeMs: median(http.v8.cycles.coldOverNative),
    idleOverNativeMs: median(http.v8.cycles.idleOverNative),
    wakeMs: spread(http.v8.cycles.wakes),
    warmProxyMs: spread(http.v8.warm),
    warmC1Ms: wrk ? median(http.v8.c1) : NaN,
    warmAddedMs: wrk ? median(http.v8.added) : NaN,
    proxyRps: wrk ? median(http.v8.rps) : null,
    rssPerInstanceKb: v8Rss,
    runawayOvershootMs: median(runaway.v8),
    afterRunawayMs: median(after.v8),
  };
  figures.wasmtime = {
    compileMs: wtCompileMs,
    reloadMs: median(reloads),
    instantiateUs: spread(wtInst),
    inThreadRunMs: spread(wtRun),
    coldStartMs: spread(http.wasmtime.cycles.cold),
    idleWarmMs: spread(http.wasmtime.cycles.warm),
    wakeAddedMs: median(http.wasmtime.cycles.added),
    nativeIdleMs: spread(http.wasmtime.cycles.native),
    coldOverNativeMs: median(http.wasmtime.cycles.coldOverNative),
    idleOverNativeMs: median(http.wasmtime.cycles.idleOverNative),
    wakeMs: spread(http.wasmtime.cycles.wakes),
    warmProxyMs: spread(http.wasmtime.warm),
    warmC1Ms: wrk ? median(http.wasmtime.c1) : NaN,
    warmAddedMs: wrk ? median(http.wasmtime.added) : NaN,
    proxyRps: wrk ? median(http.wasmtime.rps) : null,
    rssPerInstanceKb: wtRss,
    runawayOvershootMs: median(runaway.wasmtime),
    afterRunawayMs: median(after.wasmtime),
  };
  return { figures, moduleBytes: bytes.length, nativeC1Ms: wrk ? median(nativeC1) : null };
}

export function formatEngines(result: EngineComparison): string {
  const { v8, wasmtime } = result.figures;
  const row = (name: string, a: number | null, b: number | null, digits = 3): string[] => [
    name,
    a === null ? 'n/a' : fmt(a, digits),
    b === null ? 'n/a' : fmt(b, digits),
    a === null || b === null ? 'n/a' : `${fmt(b / a, 2)}x`,
  ];
  return [
    `== wasm engines: examples/wasm-c (${result.moduleBytes} bytes) on V8 and on wasmtime, same module ==`,
    table(
      ['figure', 'V8', 'wasmtime', 'wasmtime/V8'],
      [
        row('compile (ms)', v8.compileMs, wasmtime.compileMs, 1),
        row('code on restart: V8 compiles, wasmtime deserializes (ms)', v8.reloadMs, wasmtime.reloadMs, 3),
        row('instantiate p50 (µs)', v8.instantiateUs.p50, wasmtime.instantiateUs.p50, 1),
        row('run in-thread p50 (ms: instantiate + _start + CGI)', v8.inThreadRunMs.p50, wasmtime.inThreadRunMs.p50),
        row('run in-thread p99 (ms)', v8.inThreadRunMs.p99, wasmtime.inThreadRunMs.p99),
        row('cold start hibernated -> 200 p50 (ms, new connection)', v8.coldStartMs.p50, wasmtime.coldStartMs.p50),
        row(`the same GET after the same ${IDLE_MS} ms pause, not hibernated p50 (ms)`, v8.idleWarmMs.p50, wasmtime.idleWarmMs.p50),
        row('cold start: added by the wake, per cycle p50 (ms)', v8.wakeAddedMs, wasmtime.wakeAddedMs),
        row(`the same GET to the native server after the same ${IDLE_MS} ms pause p50 (ms, same cycles)`, v8.nativeIdleMs.p50, wasmtime.nativeIdleMs.p50),
        row('cold start minus that native GET, per cycle p50 (ms)', v8.coldOverNativeMs, wasmtime.coldOverNativeMs),
        row('idle-warm GET minus that native GET, per cycle p50 (ms: the wasm path after a pause)', v8.idleOverNativeMs, wasmtime.idleOverNativeMs),
        row('wake in the server (waking -> woken) p50 (ms)', v8.wakeMs.p50, wasmtime.wakeMs.p50),
        row('warm GET via proxy p50 (ms)', v8.warmProxyMs.p50, wasmtime.warmProxyMs.p50),
        row('warm GET via proxy p99 (ms)', v8.warmProxyMs.p99, wasmtime.warmProxyMs.p99),
        row(`warm via proxy, wrk -c1 p50 (ms; native Node server ${result.nativeC1Ms === null ? 'n/a' : fmt(result.nativeC1Ms, 3)})`, v8.warmC1Ms, wasmtime.warmC1Ms),
        row('warm added over the native server, c1 p50 (ms)', v8.warmAddedMs, wasmtime.warmAddedMs),
        row('req/s via proxy (wrk -c16, median of 3)', v8.proxyRps, wasmtime.proxyRps, 0),
        row('RSS per live instance (KB)', v8.rssPerInstanceKb, wasmtime.rssPerInstanceKb, 1),
        row('runaway (200 ms deadline) answered after deadline + (ms)', v8.runawayOvershootMs, wasmtime.runawayOvershootMs, 1),
        row('next 2 calls right after a runaway (ms)', v8.afterRunawayMs, wasmtime.afterRunawayMs, 1),
      ],
    ),
    '',
    goalLines(result).join('\n'),
  ].join('\n');
}

/** Issue 12's goals that this bench measures, each with the figure it names. */
function goalLines(result: EngineComparison): string[] {
  const { v8, wasmtime } = result.figures;
  const line = (name: string, measured: number, goal: string, met: boolean) => `  ${name}: ${fmt(measured, 3)} ms (goal ${goal}) ${met ? 'met' : 'NOT met'}`;
  const added = Math.min(v8.warmAddedMs, wasmtime.warmAddedMs);
  return [
    'goals (issue 12):',
    line('C cold start on wasmtime, hibernated -> 200 p50, end to end on a new connection', wasmtime.coldStartMs.p50, '< 1 ms', wasmtime.coldStartMs.p50 < 1),
    line('  over a native server after the same pause (cold minus the native GET, same cycles)', wasmtime.coldOverNativeMs, '< 1 ms', wasmtime.coldOverNativeMs < 1),
    line('  of which the wake adds (cold minus the same GET after the same pause)', wasmtime.wakeAddedMs, '< 1 ms', wasmtime.wakeAddedMs < 1),
    line('  the wake in the server (waking -> woken) p50', wasmtime.wakeMs.p50, '< 1 ms', wasmtime.wakeMs.p50 < 1),
    line('warm added p50 over a native server through the same proxy, c1, faster engine', added, '< 0.2 ms', added < 0.2),
    line('runaway stopped after its deadline on wasmtime, without replacing the worker', wasmtime.runawayOvershootMs, '<= 10 ms', wasmtime.runawayOvershootMs <= 10),
  ];
}

if (isMain(import.meta.url)) {
  const result = await runEngineComparison();
  if (result) process.stdout.write(`\n${formatEngines(result)}\n\n`);
}
