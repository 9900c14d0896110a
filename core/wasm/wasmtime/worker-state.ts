/**
 * A pool worker's wasmtime state (run.ts): the library, one linker per engine (plain and fuel-metering), the
 * modules deserialized from their artifacts (least recently used dropped past a bound) and the worker's
 * fallback captures.
 */
import { threadId } from 'node:worker_threads';
import { MAX_OUTPUT_BYTES } from '../types.ts';
import { koffi, loadWasmtime, type Ptr, type Wasmtime } from './ffi.ts';
import { Capture, loadLibc, type Libc } from './captures.ts';
import { errorText, memfdPrefix, type WasmtimeShared } from './host.ts';
import { MAX_STDERR_BYTES, dropPreparedOf } from './prepared.ts';
import { defineStandIns } from './stand-ins.ts';

/** Modules deserialized per worker, least recently used dropped first (each maps its artifact). */
const MAX_MODULES = 64;
/** Adapters deserialized per worker (one per distinct guest memory limits). */
const MAX_ADAPTERS = 16;

export interface Loaded {
  /** The module's key in its worker state (hash and artifact): what a prepared instance is made for. */
  key: string;
  module: Ptr;
  /** Pre-linked against WASI; null for a guest that links to its request's adapter instance (made per store). */
  pre: Ptr | null;
  /** The adapter's pre-linked module, for such a guest. */
  adapterPre: Ptr | null;
}

export interface WorkerState {
  w: Wasmtime;
  /** The engine's pointer as a decimal string (WasmtimeShared): one state per engine (and one more, `inline`). */
  key: string;
  engine: Ptr;
  linker: Ptr;
  modules: Map<string, Loaded>;
  adapters: Map<string, Loaded>;
  stdout: Capture;
  stderr: Capture;
  write: Ptr;
  libc: Libc;
  running: Int32Array;
  /** The main thread's state for inline calls (inlineState). */
  inline: boolean;
}

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

export function workerState(shared: WasmtimeShared, fuel: boolean): WorkerState {
  return stateFor(shared, fuel ? shared.fuelEngine : shared.engine, false);
}

/**
 * The main thread's state for guests run there (inline.ts): the plain engine, its linker's WASI imports that
 * could block the thread replaced by stand-ins that stop the guest (stand-ins.ts). Its own modules and linker,
 * so a caller of run.ts on the main thread without `inline` (a bench) still gets the real imports.
 */
export function inlineState(shared: WasmtimeShared): WorkerState {
  return stateFor(shared, shared.engine, true);
}

function stateFor(shared: WasmtimeShared, engineKey: string, inline: boolean): WorkerState {
  const key = inline ? `${engineKey}\0inline` : engineKey;
  const known = states.get(key);
  if (known) return known;
  const base = workerIo(shared);
  const { w } = base;
  const engine = BigInt(engineKey);
  const linker = w.wasmtime_linker_new(engine) as Ptr;
  const defined = w.wasmtime_linker_define_wasi(linker) as Ptr;
  if (defined) throw new Error(`wasmtime_linker_define_wasi: ${errorText(w, defined)}`);
  // Each request defines its own adapter instance under the same name (files-adapter.ts).
  w.wasmtime_linker_allow_shadowing(linker, true);
  if (inline) defineStandIns(w, linker);
  const made: WorkerState = { ...base, key, engine, linker, modules: new Map(), adapters: new Map(), inline };
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

/** Most recently used last; past `max` the oldest are freed, with any instance prepared for them. */
function remember(s: WorkerState, map: Map<string, Loaded>, key: string, loaded: Loaded, max: number): void {
  map.set(key, loaded);
  while (map.size > max) {
    const [oldest, entry] = map.entries().next().value as [string, Loaded];
    map.delete(oldest);
    dropPreparedOf(s, oldest);
    if (entry.pre) s.w.wasmtime_instance_pre_delete(entry.pre);
    s.w.wasmtime_module_delete(entry.module);
  }
}

export function loadModule(s: WorkerState, hash: string, artifact: string, adapter: string | null): Loaded {
  // The adapter is looked up on every call, never kept in the guest's entry: evicting one frees it.
  let adapterPre: Ptr | null = null;
  if (adapter !== null) {
    let shim = s.adapters.get(adapter);
    if (shim) s.adapters.delete(adapter);
    else shim = { key: adapter, ...deserialize(s, adapter, true), adapterPre: null };
    remember(s, s.adapters, adapter, shim, MAX_ADAPTERS);
    adapterPre = shim.pre;
  }
  const key = `${hash}\0${artifact}`;
  let known = s.modules.get(key);
  if (known) s.modules.delete(key);
  else known = { key, ...deserialize(s, artifact, adapter === null), adapterPre: null };
  remember(s, s.modules, key, known, MAX_MODULES);
  return { ...known, adapterPre };
}
