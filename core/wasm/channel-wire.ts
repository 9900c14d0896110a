/**
 * What the pool's channels (channels.ts) and a worker's serve loop (serve-loop.ts) share: the buffer's layout and
 * how a call and its answer are written into it. A WASI run is its JSON (the wasmtime engine's shared state named
 * by its engine address: the state itself went once on the port) and stdin as bytes, its result JSON and stdout;
 * a handler call (a component's `handle`) is its JSON and the request body, its result JSON and the response body.
 * Anything else (compiled code on a cache miss, a plugin's call), or what does not fit, goes on the port instead.
 */
import type { MessagePort } from 'node:worker_threads';
import type { WasmtimeShared } from './wasmtime/host.ts';
import type { ComponentHttpTask, WasiTask, WorkerResult, WorkerTask } from './protocol.ts';

/**
 * Two slots per worker, so the next call can wait in the buffer while one runs (the worker then goes from one to
 * the next without sleeping; channels.ts). A slot's Int32 cells, at `slotCell(slot, ...)`: [0] request (0 none,
 * 1 in the buffer, 2 close, 3 on the port; set to 0 by whoever takes it with a compare-exchange, the worker to run it
 * or the pool to withdraw it), [1] response (0 none, 1 in the buffer, 2 on the port), [2] request JSON bytes,
 * [3] body bytes, [4] result JSON bytes, [5] stdout bytes. Then [READY]: 1 once the worker's serve loop runs.
 */
export const SLOTS = 2;
const SLOT_CELLS = 8;
export const REQUEST = 0;
export const RESPONSE = 1;
export const REQUEST_JSON = 2;
export const REQUEST_BODY = 3;
export const RESULT_JSON = 4;
export const RESULT_BODY = 5;
export const READY = SLOTS * SLOT_CELLS;
export const HEAD = (READY + 8) * 4;
/** Data bytes per slot: a call whose task and body (or result and stdout) are larger goes on the port. */
export const CHANNEL_BYTES = 256 * 1024;

/** The index of one of a slot's cells. */
export const slotCell = (slot: number, cell: number): number => slot * SLOT_CELLS + cell;

/** A worker's buffer: the cells, and each slot's data. */
export function slotsOf(buffer: SharedArrayBuffer): { cells: Int32Array; bytes: Uint8Array[] } {
  const bytes = Array.from({ length: SLOTS }, (_, slot) => new Uint8Array(buffer, HEAD + slot * CHANNEL_BYTES, CHANNEL_BYTES));
  return { cells: new Int32Array(buffer, 0, HEAD / 4), bytes };
}

/** A worker's buffer, every slot empty. */
export const channelBuffer = (): SharedArrayBuffer => new SharedArrayBuffer(HEAD + SLOTS * CHANNEL_BYTES);

/** The resident task each worker runs (worker.ts hands it to serve-loop.ts). */
export interface ServeTask {
  op: 'serve';
  buffer: SharedArrayBuffer;
  port: MessagePort;
}

/** Atomics.waitAsync (ES2024; in Node 20's V8, not in this project's TypeScript lib). */
export const waitAsync = (Atomics as unknown as { waitAsync(cells: Int32Array, index: number, value: number): { async: boolean; value: Promise<unknown> | string } }).waitAsync;

/** An abort signal piscina accepts (its event-emitter form): aborting the resident task terminates its worker. */
export class Signal {
  aborted = false;
  reason: string | undefined;
  private listeners: (() => void)[] = [];

  once(_event: 'abort', listener: () => void): void {
    this.listeners.push(listener);
  }

  off(_event: 'abort', listener: () => void): void {
    this.listeners = this.listeners.filter((known) => known !== listener);
  }

  removeListener(event: 'abort', listener: () => void): void {
    this.off(event, listener);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = 'deadline';
    const listeners = this.listeners;
    this.listeners = [];
    for (const listener of listeners) listener();
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Writes `json` then `body` into `bytes`; null when they do not fit. */
function put(bytes: Uint8Array, json: string, body: Uint8Array): { json: number; body: number } | null {
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (json.length * 3 + body.length > bytes.length) {
    const exact = encoder.encode(json);
    if (exact.length + body.length > bytes.length) return null;
    bytes.set(exact, 0);
    bytes.set(body, exact.length);
    return { json: exact.length, body: body.length };
  }
  const written = encoder.encodeInto(json, bytes).written;
  bytes.set(body, written);
  return { json: written, body: body.length };
}

/** Whether the task travels in the buffer at all: a WASI run or a handler call, without code on a cache miss. */
function inBuffer(task: WorkerTask): task is WasiTask | ComponentHttpTask {
  return task.op === 'wasi' ? task.module === undefined : task.op === 'http' && task.artifact === undefined;
}

/**
 * Whether the task may wait in a worker's second slot behind another call: it travels in the buffer, where the pool
 * can withdraw it (a port message cannot be unsent). On wasmtime the pool answers a call at its deadline while its
 * guest still traps; one still waiting in a slot then is withdrawn first (pool.ts), and its deadline is absolute, so
 * a call that waited gets only what is left of it.
 */
export const mayWaitInSlot = (task: WorkerTask): boolean => inBuffer(task);

/**
 * A WASI run (stdin as the bytes) or a handler call (the request's body as the bytes) without compiled code, into
 * the buffer; null for any other task or one that does not fit. The wasmtime engine's state goes by its name.
 */
export function encodeTask(task: WorkerTask, bytes: Uint8Array): { json: number; body: number } | null {
  if (!inBuffer(task)) return null;
  const wasmtime = task.wasmtime ? { ...task.wasmtime, shared: task.wasmtime.shared.engine } : undefined;
  if (task.op === 'wasi') return put(bytes, JSON.stringify({ ...task, stdin: undefined, wasmtime }), task.stdin);
  return put(bytes, JSON.stringify({ ...task, request: { ...task.request, body: undefined }, wasmtime }), task.request.body);
}

/** The task encodeTask wrote; its engine state from `shareds` (null: not had yet, the caller fails the call). */
export function decodeTask(bytes: Uint8Array, json: number, body: number, shareds: Map<string, WasmtimeShared>): WasiTask | ComponentHttpTask | null {
  const task = JSON.parse(decoder.decode(bytes.subarray(0, json))) as (WasiTask | ComponentHttpTask) & { wasmtime?: { shared: unknown } };
  // Copied: the buffer carries the next request while the guest may still hold this one (it does not; cheap).
  const data = bytes.slice(json, json + body);
  if (task.op === 'wasi') task.stdin = data;
  else task.request.body = data;
  if (task.wasmtime) {
    const shared = shareds.get(task.wasmtime.shared as unknown as string);
    if (!shared) return null;
    task.wasmtime.shared = shared;
  }
  return task;
}

/** The engine state a task carries, for the worker to keep by name (it travels once, on the port). */
export function sharedOf(task: WorkerTask): WasmtimeShared | undefined {
  return task.op === 'wasi' || task.op === 'http' ? task.wasmtime?.shared : undefined;
}

/**
 * A WASI run's result (stdout as the bytes) or a handler call's (the response body as the bytes), into the buffer;
 * null for another result, one that does not fit, or one JSON would change (a gauge set to NaN or an infinity).
 */
export function encodeResult(op: WorkerTask['op'], result: WorkerResult, bytes: Uint8Array): { json: number; body: number } | null {
  if (op === 'call' || ('metrics' in result && result.metrics?.some((update) => !Number.isFinite(update.value)))) return null;
  const value = (result as { value?: unknown }).value;
  if (value === undefined) return put(bytes, JSON.stringify(result), new Uint8Array(0));
  const field = op === 'wasi' ? 'stdout' : 'body';
  const data = (value as Record<string, unknown>)[field];
  if (!(data instanceof Uint8Array)) return null;
  return put(bytes, JSON.stringify({ ...result, value: { ...(value as object), [field]: null } }), data);
}

export function decodeResult(bytes: Uint8Array, json: number, body: number): WorkerResult {
  const result = JSON.parse(decoder.decode(bytes.subarray(0, json))) as WorkerResult & { value?: { stdout?: Uint8Array | null; body?: Uint8Array | null } };
  // Copied out: the buffer carries the next call's answer.
  if (result.value?.stdout === null) result.value.stdout = bytes.slice(json, json + body);
  else if (result.value?.body === null) result.value.body = bytes.slice(json, json + body);
  return result;
}
