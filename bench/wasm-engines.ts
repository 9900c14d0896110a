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
import { capMemory, compileCommand } from '../core/wasm/engine.ts';
import { v8Linker } from './v8-instance.ts';
import { ModuleCache } from '../core/wasm/module-cache.ts';
import { WasmPool, type CompiledModule } from '../core/wasm/pool.ts';
import { prepareWasiCommand, runWasiCommand } from '../core/wasm/wasi-run.ts';
import { afterAnswer, dropPreparedFor } from '../core/wasm/wasmtime/prepared.ts';
import { INSTANCE_SIZE, type Ptr } from '../core/wasm/wasmtime/ffi.ts';
import { artifactPath, claimTickerSlot, ensureArtifact, ensureArtifacts, wasmtimeEngine } from '../core/wasm/wasmtime/host.ts';
import { runWasmtimeCommand } from '../core/wasm/wasmtime/run.ts';
import { wasmtimeStatus } from '../core/wasm/wasmtime/library.ts';
import { ROOT, findBinary, httpGet, isMain, makeTempDir, median, removeTempDir, runWrk, spread, timeEach, waitForOk } from './lib.ts';
import { NATIVE_APP, coldPairs, type ColdPairs } from './wasm-cold.ts';
import { formatEngines, type Engine, type EngineComparison, type EngineFigures } from './wasm-engines-report.ts';

const CAP_PAGES = 512;
const ENGINES = ['v8', 'wasmtime'] as const;

export { formatEngines, type EngineComparison, type EngineFigures };

/** Times `run` only, `count` times, with `prepare` (untimed) before each: what a request pays when its instance was made ahead. */
async function timeAhead<T>(count: number, prepare: () => T, run: (ready: T) => unknown): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const ready = prepare();
    const started = performance.now();
    run(ready);
    samples.push(performance.now() - started);
  }
  return samples;
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
  // Cold pairs (wasm-cold.ts): at least 20, so the median and p90 of a per-pair difference mean something.
  const cycles = Math.max(20, Number(process.env.BENCH_WASM_CYCLES ?? 24));
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
  const v8Module = compileCommand(bytes, CAP_PAGES);
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
  const v8Reloads = await timeEach(5, () => compileCommand(bytes, CAP_PAGES));

  // Instantiation alone: V8 links node:wasi's imports and makes an Instance in a memory lent from the pool (as
  // served, bench/v8-instance.ts), given back after; wasmtime makes a store with a WASI context and instantiates
  // the pre-linked module.
  const v8Linked = await v8Linker(v8Module);
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
  const v8Inst = (await timeEach(samples, () => v8Linked.release(v8Linked.make()))).map((ms) => ms * 1000);
  const wtInst = (await timeEach(samples, () => w.wasmtime_store_delete(wtInstance()))).map((ms) => ms * 1000);
  const v8Rss = rssPerInstance(1000, v8Linked.make, () => undefined);
  const wtRss = rssPerInstance(1000, wtInstance, (made) => made.forEach((store) => w.wasmtime_store_delete(store as Ptr)));
  w.wasmtime_instance_pre_delete(pre);
  w.wasmtime_linker_delete(linker);
  w.wasmtime_module_delete(module);

  // A whole request in this thread: instantiate, _start, CGI output captured.
  const devNull = openSync('/dev/null', 'r+');
  const v8Run = await timeEach(samples, () => runWasiCommand(v8Module, input, devNull));
  // The same with the instance made before the timed part, as a pool worker does after each answer.
  const v8Ahead = await timeAhead(samples, () => prepareWasiCommand(v8Module, devNull), (ready) => ready.run(input));
  closeSync(devNull);
  // As served: the guest rewritten to count its open files through the adapter (files-adapter.ts).
  const served = ensureArtifacts(capped, path.join(dir, 'cache'), 'bench-served');
  const benchSlot = claimTickerSlot()!;
  const wtInput = () => ({ ...input, hash: 'bench-served', ...served, deadlineAt: performance.timeOrigin + performance.now() + 5_000, deadlineMs: 5_000, slot: benchSlot, fuel: null });
  const wtRun = await timeEach(samples, () => runWasmtimeCommand(engine.shared!, wtInput()));
  const wtAhead = await timeAhead(samples, afterAnswer, () => runWasmtimeCommand(engine.shared!, { ...wtInput(), ahead: true, instanceKey: 'bench' }));
  afterAnswer();
  dropPreparedFor('bench');

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
      // BENCH_WASM_INLINE=0: every wasmtime call in a worker, as before calls ran on the main thread (A/B).
      pluginOptions: { metrics: { processMetrics: false }, 'runtime-wasm': { inline: process.env.BENCH_WASM_INLINE !== '0' } },
    },
  });
  const port = Number(new URL(kernel.url).port);
  const wrk = findBinary('wrk');
  const http = {} as Record<Engine, { cycles: ColdPairs; warm: number[]; rps: number[]; c1: number[]; added: number[] }>;
  const nativeC1: number[] = [];
  try {
    await waitForOk(port, 'bench.native.localhost', 30_000, 'the native server');
    for (const name of ENGINES) {
      const host = `bench.c-${name}.localhost`;
      await waitForOk(port, host, 30_000, host);
      http[name] = { cycles: await coldPairs(kernel, `c-${name}`, port, host, 'bench.native.localhost', cycles), warm: [], rps: [], c1: [], added: [] };
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
    inThreadAheadMs: spread(v8Ahead),
    cold: http.v8.cycles,
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
    inThreadAheadMs: spread(wtAhead),
    cold: http.wasmtime.cycles,
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

if (isMain(import.meta.url)) {
  const result = await runEngineComparison();
  if (result) process.stdout.write(`\n${formatEngines(result)}\n\n`);
}
