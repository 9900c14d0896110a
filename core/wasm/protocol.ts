/**
 * Messages between the pool (main thread) and its workers. Compiled code travels only on a worker cache miss:
 * a task names its code by hash; a worker without it answers `{ miss: true }` and the pool sends the task again
 * with the code attached (a `WebAssembly.Module` structured-clones as a handle to the same compiled code).
 */
import type { ComponentArtifact, WasmHttpRequest, WasmHttpResponse } from './component/types.ts';
import type { GuestMetricUpdate, WasmFailureKind, WasmLogLine } from './types.ts';
import type { WasmtimeShared } from './wasmtime/host.ts';
import type { WasmtimeComponentTask } from './wasmtime/component/task.ts';

interface TaskBase {
  /** Content hash of the code (plus its memory cap). */
  hash: string;
  /** Instances are kept per key and never used across keys. */
  instanceKey: string;
  /** Bumped by `dropInstances`: a kept instance of an older generation is discarded, not reused. */
  generation: number;
  /** `performance.timeOrigin + performance.now()` when the pool submitted it, for the queue-wait figure. */
  submittedAt: number;
}

export interface WasiTask extends TaskBase {
  op: 'wasi';
  module?: WebAssembly.Module;
  capPages: number;
  args: string[];
  env: Record<string, string>;
  stdin: Uint8Array;
  dataDir: string | null;
  preopenAs: string;
  /** V8: the module has no start function, so its next instance may be made ahead (wasi-prepared.ts). */
  ahead?: boolean;
  /** Set: run on wasmtime from this serialized module (no `module` travels); absent: on V8. */
  wasmtime?: { shared: WasmtimeShared; artifact: string; adapter: string | null; deadlineAt: number; deadlineMs: number; slot: number; fuel: number | null; ahead?: boolean };
  /** The call's fuel budget (`wasm.fuel`), for code compiled with fuel metering. */
  fuel?: number;
}

export interface ComponentTaskBase extends TaskBase {
  artifact?: ComponentArtifact;
  fresh: boolean;
  dataDir: string | null;
  /** Set: run on wasmtime from this serialized component (no `artifact` travels); absent: on V8. */
  wasmtime?: WasmtimeComponentTask;
}

export interface ComponentCallTask extends ComponentTaskBase {
  op: 'call';
  exportName: string;
  args: unknown[];
}

export interface ComponentHttpTask extends ComponentTaskBase {
  op: 'http';
  request: WasmHttpRequest;
}

export type WorkerTask = WasiTask | ComponentCallTask | ComponentHttpTask;

interface ResultBase {
  logs: WasmLogLine[];
  /** Updates made through the `tenement:http/metrics` import during the call (components only). */
  metrics?: GuestMetricUpdate[];
  threadId: number;
  /** Instances this worker keeps for the task's key after the task (0 or 1). */
  live: number;
  /** Keys whose instances this worker evicted to stay under its cap. */
  evicted: string[];
  queueMs: number;
  runMs: number;
  instantiated: boolean;
  /** Fuel the guest used, for a call with a fuel budget (wasmtime). */
  fuelUsed?: number;
}

export type WorkerResult =
  | { miss: true }
  | (ResultBase & { miss?: false; ok: true; value: WasiValue | WasmHttpResponse | unknown })
  | (ResultBase & { miss?: false; ok: false; kind: WasmFailureKind; message: string });

export interface WasiValue {
  exitCode: number;
  stdout: Uint8Array;
}

/** Sent on the pool's BroadcastChannel to every worker. */
/**
 * `keepPrepared`: a hibernation. What was made ahead after the key's last call stays (it is the module's, not the
 * tenant's: no tenant state, a bounded number per thread), so the wake's first request finds it ready.
 */
export type PoolBroadcast = { drop: string; generation: number; keepPrepared?: boolean };

/** Posted by a worker to the pool (`pool.on('message')`). */
export type WorkerNotice = { type: 'dropped'; threadId: number; key: string };

export interface WorkerData {
  channel: string;
  /** The pool's /dev/null descriptor, shared by every worker for WASI guests' stdio. */
  devNull: number;
  /** Instances one worker keeps at most (least recently used go first). */
  maxInstances: number;
}

export const now = (): number => performance.timeOrigin + performance.now();
