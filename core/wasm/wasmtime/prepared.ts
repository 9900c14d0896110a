/**
 * A request's store on wasmtime (run.ts), and the next one made ahead. Every request still gets a fresh store and
 * instance that no other request or tenant ever ran in (the CGI convention); what changes is when it is made: a
 * worker that has just answered a call of a module makes the store and the instance for that module's next call
 * (`afterAnswer`, run by the serve loop once the answer is posted), so the next request only fills in its own
 * WASI context (argv, env, stdin, DATA_DIR, its stdout/stderr captures) and runs `_start`. A store made ahead
 * in a worker holds no descriptor (on the main thread, its captures: inline.ts). A spent store is deleted before
 * the answer when it holds host descriptors (the preopened DATA_DIR, the guest's files), so none outlives its
 * request; else (its captures only) once the answer is posted.
 *
 * Only for modules without a start function (instantiating one runs no guest code, so nothing runs outside a
 * request, its deadline or its WASI context) and without fuel metering. At most one per module and worker,
 * MAX_PREPARED per worker; dropped with its module (evicted), when the tenant that last used it is stopped (a
 * removal, a new deploy: the pool's broadcast; a hibernation keeps it, it holds no tenant state), and never kept
 * for a memory cap other than the one it was made with (the cap is part of its key). On the main thread its WASI
 * config and captures come from the config preparer's thread when one is ready, and spent stores are freed there
 * (config-preparer.ts).
 */
import { threadId } from 'node:worker_threads';
import { ADAPTER_MODULE } from '../files-adapter.ts';
import { WASM_PAGE_BYTES } from '../cap-memory.ts';
import { MAX_OUTPUT_BYTES } from '../types.ts';
import { INSTANCE_SIZE, type Ptr } from './ffi.ts';
import { FileCapture } from './captures.ts';
import { freeElsewhere, sendToPreparer, takeConfig } from './config-preparer.ts';
import { memfdPrefix } from './host.ts';
import type { Loaded, WorkerState } from './worker-state.ts';

/** stderr kept per request; past it the guest's writes fail (the V8 path keeps lines, each cut at 16 KiB). */
export const MAX_STDERR_BYTES = 1024 * 1024;
/**
 * stdout a guest on the main thread may write (inline.ts): each write is a copy on that thread no epoch can cut
 * short, so a guest with more to say is moved to the pool (where MAX_OUTPUT_BYTES holds) once it has said this much.
 */
export const INLINE_OUTPUT_BYTES = 1024 * 1024;
/** Epoch ticks (ms) a store made ahead may wait for its request: far more than a worker lives. */
const UNTIL_THE_REQUEST = 1n << 40n;
/** Prepared instances per worker, least recently used dropped first. */
export const MAX_PREPARED = 8;

export interface Stream {
  take(): Buffer;
  close(): void;
}

/**
 * A store for one request: its WASI config (not yet set on the store), the instance once made, and the request's
 * stdout/stderr captures once attached (at the request: a store made ahead holds no descriptor).
 */
export interface Ready {
  s: WorkerState;
  store: Ptr;
  context: Ptr;
  /** The config until it is set on the store (which takes it); null after. */
  wasi: Ptr | null;
  out: Stream | null;
  err: Stream | null;
  instance: Buffer;
  instantiated: boolean;
}

interface Entry {
  ready: Ready;
  /** The state (engine) it belongs to, the module's key, the cap. */
  stateKey: string;
  moduleKey: string;
  /** The instance key of the call after which it was made: dropping that key drops it. */
  owner: string;
}

const prepared = new Map<string, Entry>();
/** Stores of answered calls, deleted after the answer is posted (or before the next call, whichever comes first). */
const spent: Ready[] = [];
/** What to prepare once the answer is posted: the last call's module. */
let next: { s: WorkerState; loaded: Loaded; capPages: number; owner: string } | null = null;

const keyOf = (s: WorkerState, moduleKey: string, capPages: number): string => `${s.key}\0${moduleKey}\0${capPages}`;

/** A new store with its memory limits and a WASI config (`wasi`, or a new one); no instance yet. */
export function newStore(s: WorkerState, capPages: number, wasi: Ptr = s.w.wasi_config_new() as Ptr): Ready {
  const { w } = s;
  const store = w.wasmtime_store_new(s.engine, 0n, 0n) as Ptr;
  const context = w.wasmtime_store_context(store) as Ptr;
  // Memory cap (also written into the module), a table cap, the guest and its adapter, one memory.
  w.wasmtime_store_limiter(store, capPages * WASM_PAGE_BYTES, 1_000_000, 2, 4, 1);
  // wasmtime checks the epoch when it instantiates, even a module that runs no code then: a store made ahead
  // must not trap there. The request sets its own deadline before the guest runs.
  w.wasmtime_context_set_epoch_deadline(context, UNTIL_THE_REQUEST);
  return { s, store, context, wasi, out: null, err: null, instance: Buffer.alloc(INSTANCE_SIZE), instantiated: false };
}

/**
 * A new store (newStore); on the main thread with a config and its captures from the config preparer's thread
 * when one is ready (config-preparer.ts), else the caller attaches its own.
 */
export function newStoreWithConfig(s: WorkerState, capPages: number): Ready {
  const config = s.inline ? takeConfig(s.libc) : null;
  const ready = newStore(s, capPages, config?.wasi);
  if (config) [ready.out, ready.err] = [config.out, config.err];
  return ready;
}

/** Points the config's stdout and stderr at the request's captures (before the config is set on the store). */
export function attachCaptures(ready: Ready): { out: Stream; err: Stream } {
  const out = (ready.out = captureStream(ready.s, ready.wasi!, 'stdout'));
  const err = (ready.err = captureStream(ready.s, ready.wasi!, 'stderr'));
  return { out, err };
}

/**
 * Attaches a store's own memfd captures ahead of its request, or none: the fallback (the thread's shared capture,
 * rewound by each request that uses it) can only be attached at the request.
 */
function attachFileCapturesAhead(ready: Ready): void {
  const out = fileCapture(ready.s, ready.wasi!, 'stdout');
  const err = out && fileCapture(ready.s, ready.wasi!, 'stderr');
  // Else the request attaches its own (a file already set on the config is replaced then).
  if (out && err) [ready.out, ready.err] = [out, err];
  else out?.close();
}

/** Frees a store and everything in it (a config never set on it included) and closes our ends of its captures. */
export function deleteStore(ready: Ready): void {
  freeStoreHere(ready.s, ready.store, ready.wasi, fdOf(ready.out), fdOf(ready.err));
}

/** deleteStore from its parts (also what the config preparer was to free when its thread ended). */
export function freeStoreHere(s: WorkerState, store: Ptr, wasi: Ptr | null, outFd: number, errFd: number): void {
  if (wasi !== null) s.w.wasi_config_delete(wasi);
  s.w.wasmtime_store_delete(store);
  for (const fd of [outFd, errFd]) if (fd >= 0) s.libc.close(fd);
}

/** Our descriptor of a capture; -1 for none (the worker's shared one, through the custom stream, stays open). */
const fdOf = (stream: Stream | null): number => (stream instanceof FileCapture ? stream.fd : -1);

/** A spent store: on the main thread freed by the config preparer's thread when it runs, else here. */
function deleteSpentStore(ready: Ready): void {
  if (ready.s.inline && freeElsewhere(ready.store, ready.wasi, fdOf(ready.out), fdOf(ready.err))) return;
  deleteStore(ready);
}

/**
 * Points the config's stdout or stderr at a fresh memfd wasmtime writes into itself (captures.ts), or, when that
 * cannot be set up, at the worker's own memfd through the custom stream.
 */
function captureStream(s: WorkerState, wasi: Ptr, which: 'stdout' | 'stderr'): Stream {
  const { w } = s;
  const file = fileCapture(s, wasi, which);
  if (file) return file;
  // Set over the file stream, if one was set: that closes wasmtime's descriptor of it.
  const own = s[which];
  own.rewind();
  (which === 'stdout' ? w.wasi_config_set_stdout_custom : w.wasi_config_set_stderr_custom)(wasi, s.write, BigInt(own.fd), 0n);
  return { take: () => own.take(), close: () => undefined };
}

/** A fresh memfd the config's stdout or stderr is pointed at (wasmtime writes into it itself), or null. */
function fileCapture(s: WorkerState, wasi: Ptr, which: 'stdout' | 'stderr'): FileCapture | null {
  const cap = which === 'stderr' ? MAX_STDERR_BYTES : s.inline ? INLINE_OUTPUT_BYTES : MAX_OUTPUT_BYTES;
  const file = FileCapture.create(s.libc, `${memfdPrefix(threadId)}${which}-r`, cap);
  const setFile = which === 'stdout' ? s.w.wasi_config_set_stdout_file : s.w.wasi_config_set_stderr_file;
  if (file && file.attach((path) => setFile(wasi, path) as boolean)) return file;
  file?.close();
  return null;
}

/**
 * Instantiates the guest in the store: pre-linked, or (a guest that can open files) after its adapter, which is
 * instantiated first and defined in the worker's linker for this store (files-adapter.ts). Returns wasmtime's
 * error, and the trap in `trap`.
 */
export function instantiate(s: WorkerState, loaded: Loaded, ready: Ready, trap: Buffer): Ptr {
  const { w } = s;
  ready.instantiated = true;
  if (loaded.pre !== null) return w.wasmtime_instance_pre_instantiate(loaded.pre, ready.context, ready.instance, trap) as Ptr;
  const adapter = Buffer.alloc(INSTANCE_SIZE);
  const made = w.wasmtime_instance_pre_instantiate(loaded.adapterPre!, ready.context, adapter, trap) as Ptr;
  if (made || trap.readBigUInt64LE(0)) return made;
  const defined = w.wasmtime_linker_define_instance(s.linker, ready.context, ADAPTER_MODULE, ADAPTER_MODULE.length, adapter) as Ptr;
  if (defined) return defined;
  return w.wasmtime_linker_instantiate(s.linker, ready.context, loaded.module, ready.instance, trap) as Ptr;
}

/** The instance prepared for this module and cap, taken (it serves one request only); null when none is. */
export function takePrepared(s: WorkerState, loaded: Loaded, capPages: number): Ready | null {
  const key = keyOf(s, loaded.key, capPages);
  const entry = prepared.get(key);
  if (!entry) return null;
  prepared.delete(key);
  return entry.ready;
}

/**
 * After the call: its store (unless the caller deleted it already: null) goes once the answer is posted, and the
 * module's next instance is made then.
 */
export function retire(s: WorkerState, ready: Ready | null, again: { loaded: Loaded; capPages: number; owner: string } | null): void {
  if (ready) spent.push(ready);
  next = again ? { s, ...again } : null;
}

/** Deletes the spent stores now (a caller that runs calls back to back without `afterAnswer`). */
export function deleteSpent(): void {
  for (let ready = spent.pop(); ready; ready = spent.pop()) deleteSpentStore(ready);
}

/** Once the answer is posted: delete the spent store, prepare the next instance of the module just served. */
export function afterAnswer(): void {
  deleteSpent();
  prepareNext();
  // On the main thread: the spent stores to free and the slots to fill again, to the preparer in one message.
  sendToPreparer();
}

function prepareNext(): void {
  const job = next;
  next = null;
  if (!job) return;
  const key = keyOf(job.s, job.loaded.key, job.capPages);
  const known = prepared.get(key);
  if (known) {
    // Most recently used last; the newest caller owns it.
    prepared.delete(key);
    prepared.set(key, { ...known, owner: job.owner });
    return;
  }
  const ready = newStoreWithConfig(job.s, job.capPages);
  const trap = Buffer.alloc(8);
  const error = instantiate(job.s, job.loaded, ready, trap);
  const trapped = trap.readBigUInt64LE(0);
  if (error || trapped) {
    // The request will make its own and report what went wrong.
    if (error) job.s.w.wasmtime_error_delete(error);
    if (trapped) job.s.w.wasm_trap_delete(trapped);
    deleteStore(ready);
    return;
  }
  // On the main thread (inline.ts) the captures are made ahead too: two memfds per store made ahead, MAX_PREPARED
  // at most, held by the process that never loses a thread; a worker's stores made ahead hold none.
  if (job.s.inline && !ready.out) attachFileCapturesAhead(ready);
  prepared.set(key, { ready, stateKey: job.s.key, moduleKey: job.loaded.key, owner: job.owner });
  while (prepared.size > MAX_PREPARED) dropEntry(prepared.keys().next().value as string);
}

function dropEntry(key: string): void {
  const entry = prepared.get(key);
  if (!entry) return;
  prepared.delete(key);
  deleteStore(entry.ready);
}

/** Drops what was prepared for a module of this state (it is being unloaded). */
export function dropPreparedOf(s: WorkerState, moduleKey: string): void {
  for (const [key, entry] of prepared) if (entry.stateKey === s.key && entry.moduleKey === moduleKey) dropEntry(key);
  if (next?.s === s && next.loaded.key === moduleKey) next = null;
}

/** Drops what was prepared after a call of this instance key (its tenant hibernated, stopped or was redeployed). */
export function dropPreparedFor(owner: string): number {
  let dropped = 0;
  for (const [key, entry] of prepared) {
    if (entry.owner !== owner) continue;
    dropEntry(key);
    dropped++;
  }
  if (next?.owner === owner) next = null;
  return dropped;
}

/** How many instances are prepared in this worker now. */
export function preparedCount(): number {
  return prepared.size;
}
