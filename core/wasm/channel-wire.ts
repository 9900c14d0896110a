/**
 * What the pool's channels (channels.ts) and a worker's serve loop (serve-loop.ts) share: the buffer's layout and
 * how a WASI call and its answer are written into it. A WASI task is its JSON (the wasmtime engine's shared state
 * named by its engine address: the state itself went once on the port) and the request body as bytes; a WASI
 * result is its JSON and stdout as bytes. Anything that does not fit goes on the port instead.
 */
import type { MessagePort } from 'node:worker_threads';
import type { WasmtimeShared } from './wasmtime/host.ts';
import type { WasiTask, WorkerResult, WorkerTask } from './protocol.ts';

/**
 * Int32 cells before the data: [0] request (0 none, 1 in the buffer, 2 close, 3 on the port), [1] response (0 none,
 * 1 in the buffer, 2 on the port), [2] request JSON bytes, [3] body bytes, [4] result JSON bytes, [5] stdout bytes,
 * [6] 1 once the worker's serve loop runs.
 */
export const HEAD = 64;
export const REQUEST = 0;
export const RESPONSE = 1;
export const READY = 6;
/** Data bytes per worker: a call whose task and body (or result and stdout) are larger goes on the port. */
export const CHANNEL_BYTES = 256 * 1024;

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

/** A WASI task without compiled code, into the buffer; null for any other task or one that does not fit. */
export function encodeWasiTask(task: WorkerTask, bytes: Uint8Array): { json: number; body: number } | null {
  if (task.op !== 'wasi' || task.module !== undefined) return null;
  const wasmtime = task.wasmtime ? { ...task.wasmtime, shared: task.wasmtime.shared.engine } : undefined;
  return put(bytes, JSON.stringify({ ...task, stdin: undefined, wasmtime }), task.stdin);
}

/** The task encodeWasiTask wrote; its engine state from `shareds` (null: not had yet, the caller fails the call). */
export function decodeWasiTask(bytes: Uint8Array, json: number, body: number, shareds: Map<string, WasmtimeShared>): WasiTask | null {
  const task = JSON.parse(decoder.decode(bytes.subarray(0, json))) as WasiTask & { wasmtime?: { shared: unknown } };
  // Copied: the buffer carries the next request while the guest may still hold this one (it does not; cheap).
  task.stdin = bytes.slice(json, json + body);
  if (task.wasmtime) {
    const shared = shareds.get(task.wasmtime.shared as unknown as string);
    if (!shared) return null;
    task.wasmtime.shared = shared;
  }
  return task;
}

/** A WASI task's result (stdout as bytes), into the buffer; null for another result or one that does not fit. */
export function encodeResult(result: WorkerResult, bytes: Uint8Array): { json: number; body: number } | null {
  const value = (result as { value?: unknown }).value;
  if (value === undefined) return put(bytes, JSON.stringify(result), new Uint8Array(0));
  const stdout = (value as { stdout?: unknown }).stdout;
  if (!(stdout instanceof Uint8Array)) return null;
  return put(bytes, JSON.stringify({ ...result, value: { ...(value as object), stdout: null } }), stdout);
}

export function decodeResult(bytes: Uint8Array, json: number, body: number): WorkerResult {
  const result = JSON.parse(decoder.decode(bytes.subarray(0, json))) as WorkerResult & { value?: { stdout: Uint8Array | null } };
  // Copied out: the buffer carries the next call's answer.
  if (result.value && result.value.stdout === null) result.value.stdout = bytes.slice(json, json + body);
  return result;
}
