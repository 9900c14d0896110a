/**
 * Runs one WASI preview 1 command (a CGI request) on wasmtime, inside a pool worker, matching the V8 path
 * (wasi-run.ts) at the guest's edge: argv and env as given (no host environment), the request body as stdin,
 * stdout captured whole (past MAX_OUTPUT_BYTES the request fails as 'output-too-large'), stderr as log lines,
 * the tenant's DATA_DIR as the one preopen. Each request gets its own store (fresh instance, WASI context and
 * limits) that no other request ran in, made ahead after the module's previous call (prepared.ts). It is deleted,
 * with everything in it, before the answer when it holds host descriptors (DATA_DIR), else once the answer is
 * posted. The guest traps at its deadline by epoch interruption: the worker lives on.
 *
 * stdout and stderr go into memfds sealed against growing, which caps what a guest can write (captures.ts): one
 * of each per request that wasmtime writes into through a file of its own, on this thread; else the worker's
 * own pair through `wasi_config_set_*_custom` with libc's `write` as the callback (wasmtime calls that callback
 * from one of its own threads, where a JS callback would have to wait for this busy thread and deadlock).
 */
import { LineSplitter } from '../wasi-run.ts';
import { WASM_PAGE_BYTES } from '../cap-memory.ts';
import { MAX_OUTPUT_BYTES, type WasmFailureKind, type WasmLogLine } from '../types.ts';
import { BYTE_VEC_SIZE, EXTERN_FUNC, EXTERN_MEMORY, EXTERN_OF, EXTERN_SIZE, TRAP_CODE_INTERRUPT, TRAP_CODE_OUT_OF_FUEL, type Ptr, type Wasmtime } from './ffi.ts';
import { EPOCH_TICK_MS, errorText, guestStarted, guestStopped, memfdPrefix, takeByteVec, type WasmtimeShared } from './host.ts';
import { INLINE_OUTPUT_BYTES, attachCaptures, deleteSpent, deleteStore, instantiate, newStoreWithConfig, retire, takePrepared } from './prepared.ts';
import { takeStandInCall } from './stand-ins.ts';
import { armBudget, takeBudgetStop } from './inline-budget.ts';
import { inlineState, loadModule, workerState, type Loaded, type WorkerState } from './worker-state.ts';

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
  /** The module has no start function: its next instance may be made ahead, after this call's answer (prepared.ts). */
  ahead?: boolean;
  /** The caller's instance key: dropping it drops what was prepared after its call. */
  instanceKey?: string;
  /**
   * Run on the main thread (inline.ts): with the stand-ins (stand-ins.ts) instead of WASI's blocking imports, and
   * stopped after `budgetMs` of the thread's CPU time from `cpuStartedMs` (inline-budget.ts). A guest that called
   * a stand-in or ran past the budget (before its own deadline) comes back `moved`, its output discarded: the
   * caller runs it in the pool.
   */
  inline?: { budgetMs: number; cpuStartedMs: number };
}

export type WasmtimeRunResult =
  | { ok: true; exitCode: number; stdout: Uint8Array; logs: WasmLogLine[]; fuelUsed?: number }
  | { ok: false; kind: WasmFailureKind; message: string; logs: WasmLogLine[]; fuelUsed?: number; moved?: Moved };

export { memfdPrefix };

/** Why an inline call must run again in the pool: it called a stand-in, ran past its budget, or wrote too much. */
export interface Moved {
  why: 'stand-in' | 'budget' | 'output';
  message: string;
}

/** Runs the command; never throws for anything the guest does. With a fuel budget, says how much it used. */
export function runWasmtimeCommand(shared: WasmtimeShared, input: WasmtimeRunInput): WasmtimeRunResult {
  const meter: { used?: number } = {};
  const result = runCommand(shared, input, meter);
  return meter.used === undefined ? result : { ...result, fuelUsed: meter.used };
}

function runCommand(shared: WasmtimeShared, input: WasmtimeRunInput, meter: { used?: number }): WasmtimeRunResult {
  const logs: WasmLogLine[] = [];
  // A caller running calls back to back (no serve loop between them) frees the last call's store here.
  deleteSpent();
  let s: WorkerState;
  let loaded: Loaded;
  try {
    s = input.inline ? inlineState(shared) : workerState(shared, input.fuel !== null);
    loaded = loadModule(s, input.hash, input.artifact, input.adapter);
  } catch (error) {
    return { ok: false, kind: 'error', message: (error as Error).message, logs };
  }
  const { w } = s;
  if (input.inline) {
    // Whatever the last inline guest left unread (it stopped before it was read) is not this one's.
    takeStandInCall();
    takeBudgetStop();
  }
  const remaining = input.deadlineAt - (performance.timeOrigin + performance.now());
  if (remaining <= 0) return { ok: false, kind: 'timeout', message: `deadline of ${input.deadlineMs}ms passed before the guest started`, logs };

  const ahead = input.ahead === true && input.fuel === null;
  // Made after the previous call's answer (prepared.ts), or now (on the main thread with a config made ahead
  // elsewhere: several requests in one turn of the loop find one store made ahead).
  const ready = (ahead ? takePrepared(s, loaded, input.capPages) : null) ?? newStoreWithConfig(s, input.capPages);
  const { context } = ready;
  const capBytes = input.capPages * WASM_PAGE_BYTES;
  const stderr = new LineSplitter('stderr', logs);
  guestStarted(s.running, input.slot);
  try {
    if (input.inline) armBudget(w, ready.store, context, input.inline.budgetMs, input.deadlineAt, input.inline.cpuStartedMs);
    else w.wasmtime_context_set_epoch_deadline(context, BigInt(Math.ceil(remaining / EPOCH_TICK_MS) + 1));
    if (input.fuel !== null) {
      const set = w.wasmtime_context_set_fuel(context, BigInt(input.fuel)) as Ptr;
      if (set) return { ok: false, kind: 'error', message: `wasmtime_context_set_fuel: ${errorText(w, set)}`, logs };
    }
    const wasi = ready.wasi!;
    // Attached ahead for a store made on the main thread (prepared.ts), else now.
    const { out, err } = ready.out && ready.err ? { out: ready.out, err: ready.err } : attachCaptures(ready);
    const names = Object.keys(input.env);
    w.wasi_config_set_argv(wasi, input.args.length, input.args);
    w.wasi_config_set_env(wasi, names.length, names, names.map((name) => input.env[name]!));
    const stdin = Buffer.alloc(BYTE_VEC_SIZE);
    w.wasm_byte_vec_new(stdin, input.stdin.length, input.stdin.length > 0 ? input.stdin : null);
    w.wasi_config_set_stdin_bytes(wasi, stdin); // takes the vector
    if (input.dataDir !== null && !w.wasi_config_preopen_dir(wasi, input.dataDir, input.preopenAs, true)) {
      return { ok: false, kind: 'error', message: `wasmtime could not preopen the data directory as ${input.preopenAs}`, logs };
    }
    ready.wasi = null;
    const set = w.wasmtime_context_set_wasi(context, wasi) as Ptr; // takes the config
    if (set) return { ok: false, kind: 'error', message: `wasmtime_context_set_wasi: ${errorText(w, set)}`, logs };

    const trap = Buffer.alloc(8);
    if (!ready.instantiated) {
      const made = instantiate(s, loaded, ready, trap);
      const madeTrap = trap.readBigUInt64LE(0);
      const stopped = stoppedEarly(input);
      if (stopped !== null) return { ok: false, ...dropped(w, made, madeTrap), ...stopped, logs: [] };
      if (made || madeTrap) return { ok: false, ...failure(w, made, madeTrap, input, 0, capBytes), logs };
    }
    const { instance } = ready;
    const start = Buffer.alloc(EXTERN_SIZE);
    if (!w.wasmtime_instance_export_get(context, instance, '_start', 6, start) || start[0] !== EXTERN_FUNC) {
      return { ok: false, kind: 'error', message: 'not a WASI command: it must export memory and _start (build with a main())', logs };
    }
    const error = w.wasmtime_func_call(context, start.subarray(EXTERN_OF), 0n, 0, 0n, 0, trap) as Ptr;
    const trapped = trap.readBigUInt64LE(0);
    const stopped = stoppedEarly(input);
    if (stopped !== null) return { ok: false, ...dropped(w, error, trapped), ...stopped, logs: stopped.moved ? [] : logs };
    const stdout = out.take();
    if (input.inline && stdout.length > INLINE_OUTPUT_BYTES) {
      return { ok: false, ...dropped(w, error, trapped), moved: { why: 'output', message: `its output outgrew the main thread's ${INLINE_OUTPUT_BYTES} bytes` }, logs: [] };
    }
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
    // A store holding host descriptors (the preopened DATA_DIR, the guest's files) is deleted before the answer:
    // none outlives its request. Others go once the answer is posted, when the module's next instance is made; so
    // does an inline store (its preopen is an empty directory of ours, and its guest could open nothing).
    const holdsTenantFiles = input.dataDir !== null && !input.inline;
    if (holdsTenantFiles) deleteStore(ready);
    retire(s, holdsTenantFiles ? null : ready, ahead ? { loaded, capPages: input.capPages, owner: input.instanceKey ?? '' } : null);
  }
}

/**
 * How a guest run on the main thread ended early, or null: it called a stand-in (stand-ins.ts: it stopped before
 * that call took effect) or spent its budget, and must run again in the pool (its output discarded); or it reached
 * its own deadline (a timeout, as in a worker).
 */
function stoppedEarly(input: WasmtimeRunInput): { moved?: Moved; kind?: 'timeout'; message?: string } | null {
  if (!input.inline) return null;
  const standIn = takeStandInCall();
  const stop = takeBudgetStop();
  if (standIn !== null) return { moved: { why: 'stand-in', message: `it called ${standIn}, which the main thread does not run` } };
  if (stop === 'budget') return { moved: { why: 'budget', message: `it ran past the main thread's budget of ${input.inline.budgetMs} ms` } };
  if (stop === 'deadline') return { kind: 'timeout', message: `deadline of ${input.deadlineMs}ms passed: the guest was interrupted (wasmtime epoch)` };
  return null;
}

/** Frees what a moved call left (its error and trap), as a failure the caller never shows. */
function dropped(w: Wasmtime, error: Ptr, trap: Ptr): { kind: WasmFailureKind; message: string } {
  if (error) w.wasmtime_error_delete(error);
  if (trap) w.wasm_trap_delete(trap);
  return { kind: 'error', message: 'moved to the pool' };
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
