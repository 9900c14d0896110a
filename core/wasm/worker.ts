/**
 * A pool worker: runs guest code so that a runaway loop only ever blocks a thread the pool can terminate.
 * Keeps compiled code by hash (sent by the pool on a miss) and at most one idle instance per key, which it
 * drops after any failure, on a newer generation for the key, or when the pool broadcasts a drop.
 */
import { BroadcastChannel, parentPort, threadId, workerData } from 'node:worker_threads';
import { classifyGuestError } from './engine.ts';
import { prepareWasiCommand } from './wasi-run.ts';
import { afterAnswerV8, dropV8PreparedFor, dropV8PreparedOf, planV8Prepared, takeV8Prepared } from './wasi-prepared.ts';
import { runWasmtimeCommand } from './wasmtime/run.ts';
import { afterAnswer, dropPreparedFor } from './wasmtime/prepared.ts';
import { dropWasmtimeComponent } from './wasmtime/component/run.ts';
import { runComponentTask } from './wasmtime/component/task.ts';
import { serveLoop } from './serve-loop.ts';
import type { ServeTask } from './channel-wire.ts';
import { now, type PoolBroadcast, type WorkerData, type WorkerNotice, type WorkerResult, type WorkerTask } from './protocol.ts';
// Static imports only: this graph is bundled into one .mjs when a pool starts (worker-bundle.ts), and under the
// tsx fallback a dynamic import() of a .ts file, or a top-level await, fails inside a worker thread.
import { handleHttp } from './component/http.ts';
import { instantiateComponent } from './component/instantiate.ts';
import type { ComponentArtifact, ComponentInstance, GuestHost, WasmHttpResponse } from './component/types.ts';
import { MAX_OUTPUT_BYTES, type GuestMetricUpdate, type WasmLogLine } from './types.ts';

const options = workerData as WorkerData;
const MAX_CODE_ENTRIES = 512;

/** Compiled code by hash, most recently used last. */
const code = new Map<string, WebAssembly.Module | ComponentArtifact>();

interface Kept {
  hash: string;
  generation: number;
  dataDir: string | null;
  instance: ComponentInstance;
  host: GuestHost;
}
/** One idle instance per key, most recently used last. */
const kept = new Map<string, Kept>();
/** The logs of the task running now: kept instances write through their host into it. */
let currentLogs: WasmLogLine[] = [];
/** Likewise the metric updates of the task running now. */
let currentMetrics: GuestMetricUpdate[] = [];

const channel = new BroadcastChannel(options.channel);
channel.unref();
channel.onmessage = (event: unknown) => {
  const message = (event as { data: PoolBroadcast }).data;
  // A wasmtime component instance of the key (wasmtime/component/run.ts) is freed the same way.
  // What was made ahead after this key's last call is dropped too, unless the tenant only hibernates (it holds no
  // tenant state, only memory: protocol.ts).
  if (!message.keepPrepared) {
    dropPreparedFor(message.drop);
    dropV8PreparedFor(message.drop);
  }
  if (dropWasmtimeComponent(message.drop, message.generation)) {
    parentPort?.postMessage({ type: 'dropped', threadId, key: message.drop } satisfies WorkerNotice);
  }
  const entry = kept.get(message.drop);
  if (entry && entry.generation < message.generation) {
    kept.delete(message.drop);
    parentPort?.postMessage({ type: 'dropped', threadId, key: message.drop } satisfies WorkerNotice);
  }
};

function remember<V>(map: Map<string, V>, key: string, value: V, max: number): string[] {
  map.delete(key);
  map.set(key, value);
  const evicted: string[] = [];
  while (map.size > max) {
    const oldest = map.keys().next().value as string;
    map.delete(oldest);
    evicted.push(oldest);
  }
  return evicted;
}

/** Once a call's answer is posted: the next instance of the module just served is made ahead, on either engine. */
function afterAnswers(): void {
  afterAnswer();
  afterAnswerV8();
}

/** piscina's task: the resident serve loop (channels.ts), which hands each call to `run`. */
export default function task(work: WorkerTask | ServeTask): Promise<WorkerResult | { served: number }> {
  return work.op === 'serve' ? serveLoop(work, run, afterAnswers) : run(work);
}

async function run(task: WorkerTask): Promise<WorkerResult> {
  const startedAt = now();
  if (task.op === 'wasi' && task.wasmtime) {
    const base = { threadId, queueMs: Math.max(0, startedAt - task.submittedAt), evicted: [] as string[], live: 0, instantiated: true };
    const result = runWasmtimeCommand(task.wasmtime.shared, { ...task, ...task.wasmtime });
    const runMs = now() - startedAt;
    const fuel = result.fuelUsed === undefined ? {} : { fuelUsed: result.fuelUsed };
    if (!result.ok) return { ...base, ok: false, kind: result.kind, message: result.message, logs: result.logs, runMs, ...fuel };
    return { ...base, ok: true, value: { exitCode: result.exitCode, stdout: result.stdout }, logs: result.logs, runMs, ...fuel };
  }
  if (task.op !== 'wasi' && task.wasmtime) return runComponentTask({ ...task, wasmtime: task.wasmtime }, options.maxInstances);
  let entry = code.get(task.hash);
  if (!entry) {
    const shipped = task.op === 'wasi' ? task.module : task.artifact;
    if (!shipped) return { miss: true };
    entry = shipped;
  }
  dropV8PreparedOf(remember(code, task.hash, entry, MAX_CODE_ENTRIES));
  const queueMs = Math.max(0, startedAt - task.submittedAt);
  const base = { threadId, queueMs, evicted: [] as string[] };

  if (task.op === 'wasi') {
    const module = entry as WebAssembly.Module;
    const result = ((task.ahead ? takeV8Prepared(task.hash) : null) ?? prepareWasiCommand(module, options.devNull)).run(task);
    if (task.ahead) planV8Prepared(task.hash, module, task.instanceKey, options.devNull);
    const runMs = now() - startedAt;
    if (!result.ok) return { ...base, ok: false, kind: result.kind, message: result.message, logs: result.logs, live: 0, runMs, instantiated: true };
    return { ...base, ok: true, value: { exitCode: result.exitCode, stdout: result.stdout }, logs: result.logs, live: 0, runMs, instantiated: true };
  }

  const artifact = entry as ComponentArtifact;
  currentLogs = [];
  const logs = currentLogs;
  currentMetrics = [];
  const metrics = currentMetrics;
  let instantiated = false;
  let slot = task.fresh ? undefined : kept.get(task.instanceKey);
  if (slot && (slot.hash !== task.hash || slot.generation !== task.generation || slot.dataDir !== task.dataDir || slot.instance.poisoned)) {
    kept.delete(task.instanceKey);
    slot = undefined;
  }
  try {
    if (!slot) {
      const host: GuestHost = { dataDir: task.dataDir, log: (stream, line) => currentLogs.push({ stream, line }), metrics: () => currentMetrics };
      slot = { hash: task.hash, generation: task.generation, dataDir: task.dataDir, instance: await instantiateComponent(artifact, host), host };
      instantiated = true;
    }
    const value = task.op === 'http' ? handleHttp(slot.instance, task.request) : slot.instance.call(task.exportName, task.args);
    if (task.op === 'http' && (value as WasmHttpResponse).body.length > MAX_OUTPUT_BYTES) {
      // The instance is fine (it answered): kept for its tenant's next request; only this answer is refused.
      const evicted = task.fresh ? [] : remember(kept, task.instanceKey, slot, options.maxInstances);
      const message = `the handler returned a body of ${(value as WasmHttpResponse).body.length} bytes, over the limit of ${MAX_OUTPUT_BYTES}`;
      return { ...base, evicted, ok: false, kind: 'output-too-large', message, logs, metrics, live: task.fresh ? 0 : 1, runMs: now() - startedAt, instantiated };
    }
    const evicted = task.fresh ? [] : remember(kept, task.instanceKey, slot, options.maxInstances);
    return { ...base, evicted, ok: true, value, logs, metrics, live: task.fresh ? 0 : 1, runMs: now() - startedAt, instantiated };
  } catch (error) {
    // A trapped component instance is poisoned, and a core instance's state may be corrupt: never reuse it.
    kept.delete(task.instanceKey);
    const failure = classifyGuestError(error);
    return { ...base, ok: false, kind: failure.kind, message: failure.message, logs, metrics, live: 0, runMs: now() - startedAt, instantiated };
  } finally {
    currentLogs = [];
    currentMetrics = [];
  }
}
