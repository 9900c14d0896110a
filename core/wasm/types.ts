/** Types shared by the pool (main thread), its worker and the wasm callers (tier, plugins). */

export interface WasmLogLine {
  stream: 'stdout' | 'stderr';
  line: string;
}

export type WasmFailureKind = 'trap' | 'timeout' | 'exit' | 'out-of-memory' | 'output-too-large' | 'overloaded' | 'error';

/** The largest response a guest may produce (a CGI module's stdout, a component's body); past it the call fails. */
export const MAX_OUTPUT_BYTES = 64 * 1024 * 1024;

/** Where the time of one call went: waiting for a worker, then running in it (instantiation included). */
export interface WasmCallTiming {
  queueMs: number;
  runMs: number;
  /** Whether the call made a new instance (not reused, or fresh). */
  instantiated: boolean;
  /** Fuel the guest used, for a call with a fuel budget (`wasm.fuel`, wasmtime). */
  fuelUsed?: number;
  /** Ran on the main thread (wasmtime/inline.ts); `moved`: tried there first, then ran in the pool. */
  inline?: 'ran' | 'moved';
}

/** One call a component made through the `tenement:http/metrics` import, already checked in the worker. */
export interface GuestMetricUpdate {
  kind: 'set' | 'add';
  name: string;
  labels: [string, string][];
  value: number;
}

export type WasmCallOutcome =
  | { ok: true; value: unknown; logs: WasmLogLine[]; metrics?: GuestMetricUpdate[]; timing?: WasmCallTiming }
  | { ok: false; kind: WasmFailureKind; message: string; logs: WasmLogLine[]; metrics?: GuestMetricUpdate[]; timing?: WasmCallTiming };

export type { ComponentArtifact, WasmHttpRequest, WasmHttpResponse } from './component/types.ts';

export interface WasmCallOptions {
  exportName: string;
  args: unknown[];
  /** Wall-clock deadline; the worker running the call is terminated when it passes. */
  deadlineMs: number;
  /** Instances are reused per key (e.g. `service:id` or `plugin:name`) and never shared across keys. */
  instanceKey: string;
  /** A new instance for this call, discarded afterwards. */
  fresh?: boolean;
  /** Host directory preopened as the guest's only file system (null: none). */
  dataDir?: string | null;
}

export interface WasmPoolOptions {
  /** Worker threads; default: the number of cores. */
  threads?: number;
  /** Calls waiting for a worker before new ones fail with 'overloaded'; default 1024. */
  maxQueue?: number;
  /** JS heap cap per worker in MB (wasm memory is capped separately, per module). */
  maxOldGenerationSizeMb?: number;
  /**
   * Threads one caller key (a tenant's instance, a plugin) may hold while another key waits, and always once
   * one of its calls ran into its deadline; default max(1, threads - 1). Alone, a key may use every thread.
   */
  maxThreadsPerKey?: number;
  /** Idle instances one worker keeps at most; the least recently used go first (each wasm memory reserves ~10 GB of address space). */
  maxInstancesPerWorker?: number;
  /**
   * Short calls of WASI modules on wasmtime run on the main thread first (wasmtime/inline.ts), moved to a worker
   * when they reach for a file, a sleep or a socket or run past a few ms; default true.
   */
  inline?: boolean;
  /**
   * How long a call may run before the call waiting behind it in its worker's second slot moves to a free worker
   * (channels.ts); default 2 ms. Tests raise it to place calls behind each other whatever the host's load.
   */
  staleMs?: number;
}
