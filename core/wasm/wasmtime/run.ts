/**
 * Runs one WASI preview 1 command (a CGI request) on wasmtime, inside a pool worker, matching the V8 path
 * (wasi-run.ts) at the guest's edge: argv and env as given (no host environment), the request body as stdin,
 * stdout captured whole (past MAX_OUTPUT_BYTES the request fails as 'output-too-large'), stderr as log lines,
 * the tenant's DATA_DIR as the one preopen. Each request gets its own store (fresh instance, WASI context and
 * limits) that is deleted, with everything in it, before the call returns. The guest traps at its deadline by
 * epoch interruption: the worker lives on.
 *
 * stdout and stderr go into memfds sealed against growing, which caps what a guest can write (captures.ts): one
 * of each per request that wasmtime writes into through a file of its own, on this thread; else the worker's
 * own pair through `wasi_config_set_*_custom` with libc's `write` as the callback (wasmtime calls that callback
 * from one of its own threads, where a JS callback would have to wait for this busy thread and deadlock).
 */
import { threadId } from 'node:worker_threads';
import { LineSplitter } from '../wasi-run.ts';
import { ADAPTER_MODULE } from '../files-adapter.ts';
import { WASM_PAGE_BYTES } from '../cap-memory.ts';
import { MAX_OUTPUT_BYTES, type WasmFailureKind, type WasmLogLine } from '../types.ts';
import {
  BYTE_VEC_SIZE, EXTERN_FUNC, EXTERN_MEMORY, EXTERN_OF, EXTERN_SIZE, INSTANCE_SIZE, TRAP_CODE_INTERRUPT, TRAP_CODE_OUT_OF_FUEL,
  koffi, loadWasmtime, type Ptr, type Wasmtime,
} from './ffi.ts';
import { Capture, FileCapture, loadLibc, type Libc } from './captures.ts';
import { EPOCH_TICK_MS, errorText, guestStarted, guestStopped, memfdPrefix, takeByteVec, type WasmtimeShared } from './host.ts';

export interface WasmtimeRunInput {
  /** The serialized module (artifact cache), deserialized once per worker. */
  artifact: string;
  /** The open-files adapter's artifact, for a guest rewritten to import from it (files-adapter.ts); else null. */
  adapter: string | null;
  hash: string;
  args: string[];
  env: Record<string, string>;
  stdin: Uint8Array;
  dataDir: string | null;
  preopenAs: string;
  capPages: number;
  /** Wall-clock time (performance.timeOrigin + now) at which the guest is interrupted. */
  deadlineAt: number;
  deadlineMs: number;
  /** The call's ticker slot (host.ts claimTickerSlot): set while the guest runs. */
  slot: number;
  /** Fuel budget: the artifact was compiled for the fuel-metering engine; null: not metered. */
  fuel: number | null;
}

export type WasmtimeRunResult =
  | { ok: true; exitCode: number; stdout: Uint8Array; logs: WasmLogLine[]; fuelUsed?: number }
  | { ok: false; kind: WasmFailureKind; message: string; logs: WasmLogLine[]; fuelUsed?: number };

/** stderr kept per request; past it the guest's writes fail (the V8 path keeps lines, each cut at 16 KiB). */
const MAX_STDERR_BYTES = 1024 * 1024;
/** Modules deserialized per worker, least recently used dropped first (each maps its artifact). */
const MAX_MODULES = 64;
/** Adapters deserialized per worker (one per distinct guest memory limits). */
const MAX_ADAPTERS = 16;

interface Loaded {
  module: Ptr;
  /** Pre-linked against WASI; null for a guest that links to its request's adapter instance (made per store). */
  pre: Ptr | null;
  /** The adapter's pre-linked module, for such a guest. */
  adapterPre: Ptr | null;
}

interface WorkerState {
  w: Wasmtime;
  engine: Ptr;
  linker: Ptr;
  modules: Map<string, Loaded>;
  adapters: Map<string, Loaded>;
  stdout: Capture;
  stderr: Capture;
  write: Ptr;
  libc: Libc;
  running: Int32Array;
}


export { memfdPrefix };

/** What every engine's state of this worker shares: the library, the captures, the ticker's cells. */
type WorkerIo = Pick<WorkerState, 'w' | 'stdout' | 'stderr' | 'write' | 'running' | 'libc'>;
let io: WorkerIo | null = null;
/** One state per engine (the plain one and the fuel-metering one): linkers and modules are per engine. */
const states = new Map<string, WorkerState>();

function workerIo(shared: WasmtimeShared): WorkerIo {
  if (io) return io;
  const w = loadWasmtime(shared.library);
  const libc = loadLibc();
  const c = koffi.load('libc.so.6');
  io = {
    libc,
    w,
    stdout: Capture.create(libc, `${memfdPrefix(threadId)}stdout`, MAX_OUTPUT_BYTES),
    stderr: Capture.create(libc, `${memfdPrefix(threadId)}stderr`, MAX_STDERR_BYTES),
    // ssize_t write(int fd, const void *buf, size_t n) has the custom stream callback's shape, with the
    // callback's data (the memfd) as its fd.
    write: c.symbol('write') as Ptr,
    running: new Int32Array(shared.ticker),
  };
  return io;
}

function workerState(shared: WasmtimeShared, fuel: boolean): WorkerState {
  const key = fuel ? shared.fuelEngine : shared.engine;
  const known = states.get(key);
  if (known) return known;
  const base = workerIo(shared);
  const { w } = base;
  const engine = BigInt(key);
  const linker = w.wasmtime_linker_new(engine) as Ptr;
  const defined = w.wasmtime_linker_define_wasi(linker) as Ptr;
  if (defined) throw new Error(`wasmtime_linker_define_wasi: ${errorText(w, defined)}`);
  // Each request defines its own adapter instance under the same name (files-adapter.ts).
  w.wasmtime_linker_allow_shadowing(linker, true);
  const made: WorkerState = { ...base, engine, linker, modules: new Map(), adapters: new Map() };
  states.set(key, made);
  return made;
}

/** Deserializes an artifact and, when `link`, pre-links it against WASI. */
function deserialize(s: WorkerState, artifact: string, link: boolean): { module: Ptr; pre: Ptr | null } {
  const { w } = s;
  const out = Buffer.alloc(8);
  const error = w.wasmtime_module_deserialize_file(s.engine, artifact, out) as Ptr;
  if (error) throw new Error(`wasmtime could not load the artifact ${artifact}: ${errorText(w, error)}`);
  const module = out.readBigUInt64LE(0);
  if (!link) return { module, pre: null };
  const preOut = Buffer.alloc(8);
  const linked = w.wasmtime_linker_instantiate_pre(s.linker, module, preOut) as Ptr;
  if (linked) {
    w.wasmtime_module_delete(module);
    throw new Error(`the module cannot be linked: ${errorText(w, linked)}`);
  }
  return { module, pre: preOut.readBigUInt64LE(0) };
}

/** Most recently used last; past `max` the oldest are freed. */
function remember(s: WorkerState, map: Map<string, Loaded>, key: string, loaded: Loaded, max: number): void {
  map.set(key, loaded);
  while (map.size > max) {
    const [oldest, entry] = map.entries().next().value as [string, Loaded];
    map.delete(oldest);
    if (entry.pre) s.w.wasmtime_instance_pre_delete(entry.pre);
    s.w.wasmtime_module_delete(entry.module);
  }
}

function loadModule(s: WorkerState, hash: string, artifact: string, adapter: string | null): Loaded {
  // The adapter is looked up on every call, never kept in the guest's entry: evicting one frees it.
  let adapterPre: Ptr | null = null;
  if (adapter !== null) {
    let shim = s.adapters.get(adapter);
    if (shim) s.adapters.delete(adapter);
    else shim = { ...deserialize(s, adapter, true), adapterPre: null };
    remember(s, s.adapters, adapter, shim, MAX_ADAPTERS);
    adapterPre = shim.pre;
  }
  const key = `${hash}\0${artifact}`;
  let known = s.modules.get(key);
  if (known) s.modules.delete(key);
  else known = { ...deserialize(s, artifact, adapter === null), adapterPre: null };
  remember(s, s.modules, key, known, MAX_MODULES);
  return { ...known, adapterPre };
}

/** Runs the command; never throws for anything the guest does. With a fuel budget, says how much it used. */
export function runWasmtimeCommand(shared: WasmtimeShared, input: WasmtimeRunInput): WasmtimeRunResult {
  const meter: { used?: number } = {};
  const result = runCommand(shared, input, meter);
  return meter.used === undefined ? result : { ...result, fuelUsed: meter.used };
}

function runCommand(shared: WasmtimeShared, input: WasmtimeRunInput, meter: { used?: number }): WasmtimeRunResult {
  const logs: WasmLogLine[] = [];
  let s: WorkerState;
  let loaded: Loaded;
  try {
    s = workerState(shared, input.fuel !== null);
    loaded = loadModule(s, input.hash, input.artifact, input.adapter);
  } catch (error) {
    return { ok: false, kind: 'error', message: (error as Error).message, logs };
  }
  const { w } = s;
  const remaining = input.deadlineAt - (performance.timeOrigin + performance.now());
  if (remaining <= 0) return { ok: false, kind: 'timeout', message: `deadline of ${input.deadlineMs}ms passed before the guest started`, logs };

  const store = w.wasmtime_store_new(s.engine, 0n, 0n) as Ptr;
  const context = w.wasmtime_store_context(store) as Ptr;
  const capBytes = input.capPages * WASM_PAGE_BYTES;
  // Memory cap (also written into the module), a table cap, the guest and its adapter, one memory.
  w.wasmtime_store_limiter(store, capBytes, 1_000_000, 2, 4, 1);
  w.wasmtime_context_set_epoch_deadline(context, BigInt(Math.ceil(remaining / EPOCH_TICK_MS) + 1));
  if (input.fuel !== null) {
    const set = w.wasmtime_context_set_fuel(context, BigInt(input.fuel)) as Ptr;
    if (set) {
      w.wasmtime_store_delete(store);
      return { ok: false, kind: 'error', message: `wasmtime_context_set_fuel: ${errorText(w, set)}`, logs };
    }
  }
  const stderr = new LineSplitter('stderr', logs);
  let out: Stream | null = null;
  let err: Stream | null = null;
  guestStarted(s.running, input.slot);
  try {
    const wasi = w.wasi_config_new() as Ptr;
    const names = Object.keys(input.env);
    w.wasi_config_set_argv(wasi, input.args.length, input.args);
    w.wasi_config_set_env(wasi, names.length, names, names.map((name) => input.env[name]!));
    const stdin = Buffer.alloc(BYTE_VEC_SIZE);
    w.wasm_byte_vec_new(stdin, input.stdin.length, input.stdin.length > 0 ? input.stdin : null);
    w.wasi_config_set_stdin_bytes(wasi, stdin); // takes the vector
    out = captureStream(s, wasi, 'stdout');
    err = captureStream(s, wasi, 'stderr');
    if (input.dataDir !== null && !w.wasi_config_preopen_dir(wasi, input.dataDir, input.preopenAs, true)) {
      w.wasi_config_delete(wasi);
      return { ok: false, kind: 'error', message: `wasmtime could not preopen the data directory as ${input.preopenAs}`, logs };
    }
    const set = w.wasmtime_context_set_wasi(context, wasi) as Ptr; // takes the config
    if (set) return { ok: false, kind: 'error', message: `wasmtime_context_set_wasi: ${errorText(w, set)}`, logs };

    const instance = Buffer.alloc(INSTANCE_SIZE);
    const trap = Buffer.alloc(8);
    const made = instantiate(s, loaded, context, instance, trap);
    const madeTrap = trap.readBigUInt64LE(0);
    if (made || madeTrap) return { ok: false, ...failure(w, made, madeTrap, input, 0, capBytes), logs };
    const start = Buffer.alloc(EXTERN_SIZE);
    if (!w.wasmtime_instance_export_get(context, instance, '_start', 6, start) || start[0] !== EXTERN_FUNC) {
      return { ok: false, kind: 'error', message: 'not a WASI command: it must export memory and _start (build with a main())', logs };
    }
    const error = w.wasmtime_func_call(context, start.subarray(EXTERN_OF), 0n, 0, 0n, 0, trap) as Ptr;
    const trapped = trap.readBigUInt64LE(0);
    const stdout = out.take();
    stderr.push(err.take());
    stderr.end();
    if (stdout.length > MAX_OUTPUT_BYTES) {
      if (error) w.wasmtime_error_delete(error);
      if (trapped) w.wasm_trap_delete(trapped);
      return { ok: false, kind: 'output-too-large', message: `the guest wrote more than ${MAX_OUTPUT_BYTES} bytes to stdout`, logs };
    }
    if (!error && !trapped) return { ok: true, exitCode: 0, stdout, logs };
    if (error) {
      const status = Buffer.alloc(4);
      if (w.wasmtime_error_exit_status(error, status)) {
        w.wasmtime_error_delete(error);
        return { ok: true, exitCode: status.readInt32LE(0), stdout, logs };
      }
    }
    return { ok: false, ...failure(w, error, trapped, input, memoryBytes(w, context, instance), capBytes), logs };
  } finally {
    guestStopped(s.running, input.slot);
    if (input.fuel !== null) meter.used = fuelUsed(w, context, input.fuel);
    w.wasmtime_store_delete(store);
    out?.close();
    err?.close();
  }
}

interface Stream {
  take(): Buffer;
  close(): void;
}

/**
 * Points the config's stdout or stderr at a fresh memfd wasmtime writes into itself (captures.ts), or, when that
 * cannot be set up, at the worker's own memfd through the custom stream.
 */
function captureStream(s: WorkerState, wasi: Ptr, which: 'stdout' | 'stderr'): Stream {
  const { w } = s;
  const file = FileCapture.create(s.libc, `${memfdPrefix(threadId)}${which}-r`, which === 'stdout' ? MAX_OUTPUT_BYTES : MAX_STDERR_BYTES);
  const setFile = which === 'stdout' ? w.wasi_config_set_stdout_file : w.wasi_config_set_stderr_file;
  if (file && file.attach((path) => setFile(wasi, path) as boolean)) return file;
  file?.close();
  // Set over the file stream, if one was set: that closes wasmtime's descriptor of it.
  const own = s[which];
  own.rewind();
  (which === 'stdout' ? w.wasi_config_set_stdout_custom : w.wasi_config_set_stderr_custom)(wasi, s.write, BigInt(own.fd), 0n);
  return { take: () => own.take(), close: () => undefined };
}

/**
 * Instantiates the guest in the store: pre-linked, or (a guest that can open files) after its adapter, which is
 * instantiated first and defined in the worker's linker for this store (files-adapter.ts).
 */
function instantiate(s: WorkerState, loaded: Loaded, context: Ptr, instance: Buffer, trap: Buffer): Ptr {
  const { w } = s;
  if (loaded.pre !== null) return w.wasmtime_instance_pre_instantiate(loaded.pre, context, instance, trap) as Ptr;
  const adapter = Buffer.alloc(INSTANCE_SIZE);
  const made = w.wasmtime_instance_pre_instantiate(loaded.adapterPre!, context, adapter, trap) as Ptr;
  if (made || trap.readBigUInt64LE(0)) return made;
  const defined = w.wasmtime_linker_define_instance(s.linker, context, ADAPTER_MODULE, ADAPTER_MODULE.length, adapter) as Ptr;
  if (defined) return defined;
  return w.wasmtime_linker_instantiate(s.linker, context, loaded.module, instance, trap) as Ptr;
}

/** Fuel the store's guest used of its `budget` (what is left, taken from it). */
function fuelUsed(w: Wasmtime, context: Ptr, budget: number): number | undefined {
  const left = Buffer.alloc(8);
  const error = w.wasmtime_context_get_fuel(context, left) as Ptr;
  if (error) {
    errorText(w, error);
    return undefined;
  }
  return budget - Number(left.readBigUInt64LE(0));
}

function memoryBytes(w: Wasmtime, context: Ptr, instance: Buffer): number {
  const memory = Buffer.alloc(EXTERN_SIZE);
  if (!w.wasmtime_instance_export_get(context, instance, 'memory', 6, memory) || memory[0] !== EXTERN_MEMORY) return 0;
  return Number(w.wasmtime_memory_data_size(context, memory.subarray(EXTERN_OF)));
}

/** A trap or an error from wasmtime, as a failure kind with wasmtime's message (both freed). */
function failure(w: Wasmtime, error: Ptr, trap: Ptr, input: WasmtimeRunInput, usedBytes: number, capBytes: number): { kind: WasmFailureKind; message: string } {
  if (error) {
    const message = errorText(w, error);
    if (trap) w.wasm_trap_delete(trap);
    return { kind: /memory|limit/i.test(message) && /exceed|grow|allocat/i.test(message) ? 'out-of-memory' : 'error', message };
  }
  const code = Buffer.alloc(1);
  const known = w.wasmtime_trap_code(trap, code);
  const vec = Buffer.alloc(BYTE_VEC_SIZE);
  w.wasm_trap_message(trap, vec);
  w.wasm_trap_delete(trap);
  const message = takeByteVec(w, vec).toString('utf8').replace(/\0+$/, '');
  if (known && code[0] === TRAP_CODE_INTERRUPT) {
    return { kind: 'timeout', message: `deadline of ${input.deadlineMs}ms passed: the guest was interrupted (wasmtime epoch), its worker lives on` };
  }
  if (known && code[0] === TRAP_CODE_OUT_OF_FUEL) return { kind: 'timeout', message: `the guest ran out of fuel: ${message}` };
  // An allocator aborts (`unreachable`) when memory.grow fails at the cap: within a MiB of it, that is what happened.
  if (usedBytes >= capBytes - 16 * WASM_PAGE_BYTES) return { kind: 'out-of-memory', message: `${message} (memory at its cap of ${capBytes / 1_048_576} MiB)` };
  const name = known ? TRAP_NAMES.get(code[0]!) : undefined;
  return { kind: 'trap', message: name ? `${name}: ${cause(message)}` : cause(message) };
}

/** Names of the common traps, as V8 words them (so a log line reads the same on either engine). */
const TRAP_NAMES = new Map<number, string>([
  [0, 'Maximum call stack size exceeded'],
  [1, 'memory access out of bounds'],
  [6, 'integer overflow'],
  [7, 'divide by zero'],
  [9, 'unreachable'],
]);

/** wasmtime's message is a backtrace, then "Caused by:" and the trap itself: the trap is the part worth a log line. */
function cause(message: string): string {
  const lines = message.split('\n').map((line) => line.trim()).filter(Boolean);
  return lines[lines.length - 1] ?? message;
}
