/**
 * The process's one wasmtime engine (every pool worker and the compiler share it: a `wasm_engine_t` is
 * thread-safe, and one engine means one epoch to tick), its epoch ticker, and the compiler that turns a module
 * into an artifact on disk (`wasmtime_module_serialize`), keyed by content hash and engine version, so a cold
 * start deserializes instead of compiling.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ErrorCodes, TenementError } from '../../errors.ts';
import { BYTE_VEC_SIZE, loadWasmtime, koffi, type Ptr, type Wasmtime } from './ffi.ts';
import { WASMTIME_VERSION, wasmtimeLibraryPath, wasmtimeStatus } from './library.ts';
import { ADAPTER_VERSION, boundGuestFiles, filesAdapter, type MemoryLimits } from '../files-adapter.ts';
import { capMemory, hasStartFunction } from '../cap-memory.ts';
import { closeMemfdsNamed } from '../fd-sweep.ts';
import type { Engine } from '../engine.ts';

/** How often the engine's epoch advances while a guest runs: the granularity of deadlines. */
export const EPOCH_TICK_MS = 1;
/**
 * How long the ticker keeps ticking after the last guest stopped, before it sleeps until the next starts: calls
 * that come back to back (a stream of requests) then start without waking it, a futex wake and a thread switch
 * each (inline ones on the main thread's path: wasmtime/inline.ts). Ticking costs a wake-up a millisecond.
 */
export const TICKER_LINGER_MS = 20;
/** After a guest's deadline (where it traps by epoch), how long before its worker is replaced anyway. */
export const WASMTIME_BACKSTOP_MS = 2_000;

/** A worker's stdout/stderr captures' names (run.ts): the pool closes a terminated worker's by its thread id. */
export const memfdPrefix = (thread: number): string => `tenement-wasmtime-${thread}-`;

/** What a worker needs to use the engine: the library to load and the engine's address. */
export interface WasmtimeShared {
  library: string;
  engine: string;
  /**
   * The engine of components (component/): the default on-demand allocator, so the idle instances they keep per
   * tenant take no slot of `engine`'s pool (which holds WASI modules' instances only, a bounded number per worker).
   */
  componentEngine: string;
  /**
   * A third engine with fuel metering (`wasm.fuel`): fuel checks change the compiled code, so metered modules
   * are compiled for it and run on it; the others keep the faster code of `engine`.
   */
  fuelEngine: string;
  /**
   * Int32 cells: [0] stop flag, [1] guests running now (the ticker sleeps while it is 0), then one per call slot
   * (TICKER_SLOTS): 1 while that call's guest runs (guestStarted/guestStopped).
   */
  ticker: SharedArrayBuffer;
}

/** wasmtime calls in this process's pools at once (queued ones included: a slot is taken on submission). */
export const TICKER_SLOTS = 65_536;
const SLOT_BASE = 2;
/** Free slots (main thread): a call takes one for its life in the pool. */
const freeSlots = Array.from({ length: TICKER_SLOTS }, (_, i) => TICKER_SLOTS - 1 - i);

/** A slot for one call, or null when TICKER_SLOTS calls are in the pool already. */
export function claimTickerSlot(): number | null {
  return freeSlots.pop() ?? null;
}

/**
 * The call of `slot` is over, however it ended. Its worker clears the slot when the guest stops; a worker
 * terminated first (the backstop, for a guest blocked in a host call) never does, and the running count would
 * stay up for good, the ticker waking every millisecond with nothing to interrupt: the pool clears it here.
 */
export function releaseTickerSlot(cells: Int32Array, slot: number): void {
  guestStopped(cells, slot);
  freeSlots.push(slot);
}

/** A guest starts running in `slot`: the ticker ticks while any runs. */
export function guestStarted(cells: Int32Array, slot: number): void {
  Atomics.store(cells, SLOT_BASE + slot, 1);
  Atomics.add(cells, 1, 1);
  Atomics.notify(cells, 1);
}

/** The guest of `slot` stopped; counted once, whoever says it first (the worker, or the pool after a termination). */
export function guestStopped(cells: Int32Array, slot: number): void {
  if (Atomics.compareExchange(cells, SLOT_BASE + slot, 1, 0) === 1) Atomics.sub(cells, 1, 1);
}

let shared: WasmtimeShared | null = null;
let lib: Wasmtime | null = null;

/** The engine and its ticker, made on first use; null (with the reason) when the library is not usable. */
export function wasmtimeEngine(): { shared: WasmtimeShared; lib: Wasmtime } | { shared: null; reason: string } {
  if (shared && lib) return { shared, lib };
  const status = wasmtimeStatus();
  if (!status.usable) return { shared: null, reason: status.reason };
  try {
    lib = loadWasmtime(status.library);
  } catch (error) {
    return { shared: null, reason: `cannot load ${status.library}: ${(error as Error).message}` };
  }
  const made = (['pooled', 'components', 'fuel'] as const).map((kind) => {
    const config = lib!.wasm_config_new() as Ptr;
    lib!.wasmtime_config_epoch_interruption_set(config, true);
    if (kind === 'fuel') lib!.wasmtime_config_consume_fuel_set(config, true);
    if (kind === 'pooled') usePoolingAllocator(lib!, config);
    return lib!.wasm_engine_new_with_config(config) as Ptr; // takes the config
  });
  const [engine, componentEngine, fuelEngine] = made as [Ptr, Ptr, Ptr];
  if (!engine || !componentEngine || !fuelEngine) return { shared: null, reason: 'wasm_engine_new_with_config returned null' };
  shared = {
    library: status.library,
    engine: engine.toString(),
    componentEngine: componentEngine.toString(),
    fuelEngine: fuelEngine.toString(),
    ticker: new SharedArrayBuffer(4 * (SLOT_BASE + TICKER_SLOTS)),
  };
  startTicker(shared);
  return { shared, lib };
}

/**
 * Instances (each with one memory and one table) alive at once in the pool, all workers together: 20 per worker
 * (the running call's instance and its spent store, up to MAX_PREPARED made ahead, each with its adapter's) for
 * the 256 workers `wasm.threads` allows, so no configuration runs out of slots. The cost is address space only:
 * 5,120 slots reserve ~20 TiB (VmSize) of the 128 TiB a process has, against ~4 TiB for 1,000; the engine's
 * creation time and RSS measured the same (37-78 ms, +9 MB, three runs each).
 */
export const POOL_INSTANCES = 5_120;
/** Bytes of each memory (and of each table) zeroed in place on reuse rather than given back to the kernel. */
export const POOL_KEEP_RESIDENT = 1024 * 1024;
/**
 * Unused slots kept warm for the module that last ran in them (wasmtime's default is 100): each holds the pages
 * its guest touched within POOL_KEEP_RESIDENT. 200 distinct modules touching 1 MiB each, run once in one thread:
 * RSS +72 MiB with 100, +35 MiB with 16 (+26-28 MiB without the pool, their code); per request the same within
 * noise (202-233 against 184-216 µs wall, 3 alternated runs at load 5-6).
 */
export const POOL_WARM_SLOTS = 16;

/**
 * Instances of WASI modules live in slots of one pool that wasmtime reserves once, and a store's deletion gives its
 * slot back instead of unmapping its memory. Without it every request's store mmapped a fresh 4 GiB reservation
 * (new page tables, a page fault for each page the guest touched) and its deletion unmapped it (page tables freed,
 * a TLB shootdown to every core the process ran on): in-thread on examples/wasm-c with DATA_DIR preopened,
 * 473-586 µs wall and 473-504 µs CPU per request and made-ahead instance, against 187-265 / 186-208 µs pooled
 * (docs/wasm.md). The first POOL_KEEP_RESIDENT bytes of a memory are zeroed in place when its slot is reused
 * (wasmtime's `linear_memory_keep_resident`), beyond them the pages are given back: a slot reused by another
 * tenant never shows what the last one wrote (test/e2e/wasm-prepared.test.ts). Pooled without keeping anything
 * resident was slower than no pool (the zeroing is an madvise with its TLB shootdown on the request's path).
 */
function usePoolingAllocator(w: Wasmtime, config: Ptr): void {
  const pooling = w.wasmtime_pooling_allocation_config_new() as Ptr;
  // Per worker: the running call's instance, its spent store and up to MAX_PREPARED made ahead; each guest that
  // can open files has its adapter's instance too (POOL_INSTANCES).
  w.wasmtime_pooling_allocation_config_total_core_instances_set(pooling, POOL_INSTANCES);
  w.wasmtime_pooling_allocation_config_total_memories_set(pooling, POOL_INSTANCES);
  w.wasmtime_pooling_allocation_config_total_tables_set(pooling, POOL_INSTANCES);
  w.wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(pooling, POOL_KEEP_RESIDENT);
  w.wasmtime_pooling_allocation_config_table_keep_resident_set(pooling, POOL_KEEP_RESIDENT);
  w.wasmtime_pooling_allocation_config_max_unused_warm_slots_set(pooling, POOL_WARM_SLOTS);
  w.wasmtime_pooling_allocation_strategy_set(config, pooling);
  w.wasmtime_pooling_allocation_config_delete(pooling);
}

/**
 * A thread that advances the epoch every EPOCH_TICK_MS while guests run (and TICKER_LINGER_MS after), and sleeps
 * otherwise: guests trap at their deadline however busy the main thread is. It does nothing else, so it needs no
 * module graph of ours.
 */
function startTicker(state: WasmtimeShared): void {
  const source = `
    const { workerData } = require('node:worker_threads');
    const koffi = require(workerData.koffi);
    const lib = koffi.load(workerData.library);
    const increment = lib.func('void wasmtime_engine_increment_epoch(void *engine)');
    const engines = [BigInt(workerData.engine), BigInt(workerData.componentEngine), BigInt(workerData.fuelEngine)];
    const cells = new Int32Array(workerData.ticker);
    let last = performance.now();
    let lastRunning = last;
    for (;;) {
      if (Atomics.load(cells, 0) !== 0) break;
      if (Atomics.load(cells, 1) !== 0) lastRunning = performance.now();
      else if (performance.now() - lastRunning >= ${TICKER_LINGER_MS}) { Atomics.wait(cells, 1, 0, 1000); last = lastRunning = performance.now(); continue; }
      Atomics.wait(cells, 0, 0, ${EPOCH_TICK_MS});
      // One tick per period that passed, not per wake-up: on a busy host a sleep lasts longer than asked, and
      // deadlines (counted in ticks) would stretch with it.
      const now = performance.now();
      const due = Math.floor((now - last) / ${EPOCH_TICK_MS});
      for (let i = 0; i < due; i++) for (const engine of engines) increment(engine);
      last += due * ${EPOCH_TICK_MS};
    }`;
  const koffiPath = createRequireResolve('koffi');
  const worker = new Worker(source, { eval: true, workerData: { ...state, koffi: koffiPath } });
  worker.unref();
  worker.on('error', () => undefined);
}

function createRequireResolve(name: string): string {
  return import.meta.resolve(name).replace(/^file:\/\//, '');
}

/** Reads a wasm_byte_vec_t's bytes (a message or an artifact) and frees it. */
export function takeByteVec(w: Wasmtime, vec: Buffer): Buffer {
  const size = Number(vec.readBigUInt64LE(0));
  const data = vec.readBigUInt64LE(8);
  // Copied out (Buffer.from of the view would share memory the delete below frees).
  const bytes = size > 0 ? Buffer.from(new Uint8Array(koffi.view(data, size))) : Buffer.alloc(0);
  w.wasm_byte_vec_delete(vec);
  return bytes;
}

/** A wasmtime_error_t's message, the error freed. */
export function errorText(w: Wasmtime, error: Ptr): string {
  const vec = Buffer.alloc(BYTE_VEC_SIZE);
  w.wasmtime_error_message(error, vec);
  w.wasmtime_error_delete(error);
  return takeByteVec(w, vec).toString('utf8');
}

/**
 * The artifact file for a module: by content hash (cap included), engine version and the open-files rewrite's
 * version (an artifact made before the bound existed must not be loaded as a bounded one).
 */
export function artifactPath(cacheDir: string, hash: string, fuel = false): string {
  return path.join(cacheDir, `wasmtime-${WASMTIME_VERSION}`, `${hash}.f${ADAPTER_VERSION}${fuel ? '.fuel' : ''}.cwasm`);
}

/** The adapter's artifact: its bytes depend only on the guest memory's limits. */
function adapterPath(cacheDir: string, memory: MemoryLimits, fuel: boolean): string {
  return path.join(cacheDir, `wasmtime-${WASMTIME_VERSION}`, `files-adapter-v${ADAPTER_VERSION}-${memory.min}-${memory.max}${fuel ? '.fuel' : ''}.cwasm`);
}

/** What a worker loads for a module: the guest's artifact, and the adapter's when the guest can open files. */
export interface WasmtimeArtifacts {
  artifact: string;
  adapter: string | null;
}

/**
 * Compiles a module (its cap written in) into its artifacts unless they are on disk: a guest that can open files
 * is rewritten to count them through the adapter (files-adapter.ts), which gets an artifact of its own.
 */
export function ensureArtifacts(capped: Uint8Array, cacheDir: string, hash: string, fuel = false): WasmtimeArtifacts {
  let bounded;
  try {
    bounded = boundGuestFiles(capped);
  } catch (error) {
    throw new TenementError(ErrorCodes.WASM_COMPILE_FAILED, `cannot prepare the module for wasmtime: ${(error as Error).message}`);
  }
  const artifact = artifactPath(cacheDir, hash, fuel);
  ensureArtifact(bounded ? bounded.guest : capped, artifact, fuel);
  if (!bounded) return { artifact, adapter: null };
  const adapter = adapterPath(cacheDir, bounded.memory, fuel);
  ensureArtifact(filesAdapter(bounded.memory), adapter, fuel);
  return { artifact, adapter };
}

/**
 * Compiles `bytes` (the cap already written in) and writes the artifact, unless it is on disk already.
 * Returns whether it compiled. Throws a TNM_ERR_WASM_COMPILE error carrying wasmtime's message.
 */
export function ensureArtifact(bytes: Uint8Array, file: string, fuel = false): { compiled: boolean } {
  if (existsSync(file)) return { compiled: false };
  const engine = wasmtimeEngine();
  if (!engine.shared) throw new TenementError(ErrorCodes.WASMTIME_UNAVAILABLE, engine.reason);
  const w = engine.lib;
  const out = Buffer.alloc(8);
  const error = w.wasmtime_module_new(BigInt(fuel ? engine.shared.fuelEngine : engine.shared.engine), bytes, bytes.length, out) as Ptr;
  if (error) throw new TenementError(ErrorCodes.WASM_COMPILE_FAILED, `wasmtime could not compile the module: ${errorText(w, error)}`);
  const module = out.readBigUInt64LE(0);
  try {
    const vec = Buffer.alloc(BYTE_VEC_SIZE);
    const failed = w.wasmtime_module_serialize(module, vec) as Ptr;
    if (failed) throw new TenementError(ErrorCodes.WASM_COMPILE_FAILED, `wasmtime could not serialize the module: ${errorText(w, failed)}`);
    const artifact = takeByteVec(w, vec);
    mkdirSync(path.dirname(file), { recursive: true });
    // Written aside and renamed: a worker deserializing it never maps half a file.
    const temp = `${file}.${process.pid}.${Date.now()}.tmp`;
    writeFileSync(temp, artifact);
    renameSync(temp, file);
  } finally {
    w.wasmtime_module_delete(module);
  }
  return { compiled: true };
}

/**
 * wasmtime behind the engine seam, for WASI preview 1 modules: compiled once to artifacts on disk (the guest
 * rewritten to bound its open files), run in the pool's workers by wasmtime/run.ts. A guest traps at its
 * deadline by epoch and its worker lives on; the pool's own deadline, WASMTIME_BACKSTOP_MS later, is the
 * backstop for a guest stuck where epochs do not reach (a blocking host call). The engine and its ticker are
 * made by the first call (a host serving only V8 never loads the library).
 */
/** The library path `availability` found usable last (none yet). */
let foundLibrary: string | null = null;

export const wasmtimeModules: Engine = {
  name: 'wasmtime',
  availability() {
    // Asked at every spawn and wake: a library found at this path once is not looked for again (a library removed
    // under a running server fails at its next load, with wasmtime's error, either way).
    const library = wasmtimeLibraryPath();
    if (library === foundLibrary) return { usable: true };
    const status = wasmtimeStatus();
    if (status.usable) foundLibrary = library;
    return status.usable ? { usable: true } : { usable: false, reason: `${ErrorCodes.WASMTIME_UNAVAILABLE}: ${status.reason}` };
  },
  compileModule(bytes, hash, capPages, cacheDir, options = {}) {
    const fuel = options.fuel === true;
    const { artifact, adapter } = ensureArtifacts(capMemory(bytes, capPages), cacheDir, hash, fuel);
    // Without a start function, instantiating runs no guest code: a worker may make the next instance ahead.
    return { engine: 'wasmtime', hash, artifact, adapter, capPages, fuel, ahead: !hasStartFunction(bytes) };
  },
  wasiCall(compiled, base, deadlineMs) {
    if (compiled.engine !== 'wasmtime') return { error: 'the module was compiled by V8, not wasmtime' };
    const engine = wasmtimeEngine();
    if (!engine.shared) return { error: `wasmtime is not usable here: ${engine.reason}` };
    const slot = claimTickerSlot();
    if (slot === null) return { error: 'too many wasmtime calls in this process' };
    const cells = new Int32Array(engine.shared.ticker);
    // Metered code runs only with a budget: without one a call gets the most a store can hold.
    const fuel = compiled.fuel ? (base.fuel ?? Number.MAX_SAFE_INTEGER) : null;
    const wasmtime = { shared: engine.shared, artifact: compiled.artifact, adapter: compiled.adapter, deadlineAt: base.submittedAt + deadlineMs, deadlineMs, slot, fuel, ahead: compiled.ahead === true };
    const task = { ...base, wasmtime };
    return { task, withCode: () => task, backstopMs: WASMTIME_BACKSTOP_MS, done: () => releaseTickerSlot(cells, slot) };
  },
  // A worker replaced at the backstop (its guest blocked in a host call) leaves its two captures.
  workerGone: (threadId) => void closeMemfdsNamed(memfdPrefix(threadId)),
};
