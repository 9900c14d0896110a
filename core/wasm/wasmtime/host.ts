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
import { WASMTIME_VERSION, wasmtimeStatus } from './library.ts';

/** How often the engine's epoch advances while a guest runs: the granularity of deadlines. */
export const EPOCH_TICK_MS = 1;

/** What a worker needs to use the engine: the library to load and the engine's address. */
export interface WasmtimeShared {
  library: string;
  engine: string;
  /** Int32 cells: [0] stop flag, [1] guests running now (the ticker sleeps while it is 0). */
  ticker: SharedArrayBuffer;
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
  const config = lib.wasm_config_new() as Ptr;
  lib.wasmtime_config_epoch_interruption_set(config, true);
  const engine = lib.wasm_engine_new_with_config(config) as Ptr; // takes the config
  if (!engine) return { shared: null, reason: 'wasm_engine_new_with_config returned null' };
  shared = { library: status.library, engine: engine.toString(), ticker: new SharedArrayBuffer(8) };
  startTicker(shared);
  return { shared, lib };
}

/**
 * A thread that advances the epoch every EPOCH_TICK_MS while guests run, and sleeps otherwise: guests trap at
 * their deadline however busy the main thread is. It does nothing else, so it needs no module graph of ours.
 */
function startTicker(state: WasmtimeShared): void {
  const source = `
    const { workerData } = require('node:worker_threads');
    const koffi = require(workerData.koffi);
    const lib = koffi.load(workerData.library);
    const increment = lib.func('void wasmtime_engine_increment_epoch(void *engine)');
    const engine = BigInt(workerData.engine);
    const cells = new Int32Array(workerData.ticker);
    let last = performance.now();
    for (;;) {
      if (Atomics.load(cells, 0) !== 0) break;
      if (Atomics.load(cells, 1) === 0) { Atomics.wait(cells, 1, 0, 1000); last = performance.now(); continue; }
      Atomics.wait(cells, 0, 0, ${EPOCH_TICK_MS});
      // One tick per period that passed, not per wake-up: on a busy host a sleep lasts longer than asked, and
      // deadlines (counted in ticks) would stretch with it.
      const now = performance.now();
      const due = Math.floor((now - last) / ${EPOCH_TICK_MS});
      for (let i = 0; i < due; i++) increment(engine);
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

/** The artifact file for a module: by content hash (cap included) and engine version. */
export function artifactPath(cacheDir: string, hash: string): string {
  return path.join(cacheDir, `wasmtime-${WASMTIME_VERSION}`, `${hash}.cwasm`);
}

/**
 * Compiles `bytes` (the cap already written in) and writes the artifact, unless it is on disk already.
 * Returns whether it compiled. Throws a TNM_ERR_WASM_COMPILE error carrying wasmtime's message.
 */
export function ensureArtifact(bytes: Uint8Array, file: string): { compiled: boolean } {
  if (existsSync(file)) return { compiled: false };
  const engine = wasmtimeEngine();
  if (!engine.shared) throw new TenementError(ErrorCodes.WASMTIME_UNAVAILABLE, engine.reason);
  const w = engine.lib;
  const out = Buffer.alloc(8);
  const error = w.wasmtime_module_new(BigInt(engine.shared.engine), bytes, bytes.length, out) as Ptr;
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
