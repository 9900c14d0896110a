/**
 * The seam between the pool and the wasmtime component runner: what a component task carries to a worker when
 * its artifact is a wasmtime one (made on the main thread), and the worker's side that turns the runner's
 * result into the pool's WorkerResult. Kept here so the pool and the worker only branch once.
 */
import { threadId } from 'node:worker_threads';
import type { ComponentArtifact } from '../../component/types.ts';
import type { ComponentCallTask, ComponentHttpTask, WorkerResult } from '../../protocol.ts';
import { now } from '../../protocol.ts';
import { TICKER_SLOTS, claimTickerSlot, releaseTickerSlot, wasmtimeEngine, type WasmtimeShared } from '../host.ts';
import { runWasmtimeComponent } from './run.ts';

/** Carried by a component task whose artifact runs on wasmtime (no compiled code travels: workers map the file). */
export interface WasmtimeComponentTask {
  shared: WasmtimeShared;
  file: string;
  capPages: number;
  /** Wall-clock time (performance.timeOrigin + now) at which the guest is interrupted. */
  deadlineAt: number;
  deadlineMs: number;
  /** The call's ticker slot (../host.ts): the ticker runs while a guest runs, and the pool clears it however the call ends. */
  slot: number;
}

/**
 * The task's wasmtime part for `artifact` and what to call when the call is over (`release`, whatever became of
 * its worker), or why the engine cannot run it here.
 */
export function wasmtimeComponentTask(
  artifact: ComponentArtifact,
  deadlineMs: number,
): { task: WasmtimeComponentTask; release: () => void } | { reason: string } | undefined {
  if (!artifact.wasmtime) return undefined;
  const engine = wasmtimeEngine();
  if (!engine.shared) return { reason: `wasmtime is not usable here: ${engine.reason}` };
  const slot = claimTickerSlot();
  if (slot === null) return { reason: `more than ${TICKER_SLOTS} wasmtime calls are in the pool at once` };
  const cells = new Int32Array(engine.shared.ticker);
  return {
    task: { shared: engine.shared, file: artifact.wasmtime.file, capPages: artifact.memoryPages, deadlineAt: now() + deadlineMs, deadlineMs, slot },
    release: () => releaseTickerSlot(cells, slot),
  };
}

/** In the worker: runs the task on wasmtime. */
export function runComponentTask(task: (ComponentCallTask | ComponentHttpTask) & { wasmtime: WasmtimeComponentTask }, maxInstances: number): WorkerResult {
  const startedAt = now();
  const result = runWasmtimeComponent({
    shared: task.wasmtime.shared,
    file: task.wasmtime.file,
    hash: task.hash,
    instanceKey: task.instanceKey,
    generation: task.generation,
    fresh: task.fresh,
    dataDir: task.dataDir,
    capPages: task.wasmtime.capPages,
    deadlineAt: task.wasmtime.deadlineAt,
    deadlineMs: task.wasmtime.deadlineMs,
    slot: task.wasmtime.slot,
    maxInstances,
    call: task.op === 'http' ? { op: 'http', request: task.request } : { op: 'call', exportName: task.exportName, args: task.args },
  });
  const base = {
    threadId,
    queueMs: Math.max(0, startedAt - task.submittedAt),
    runMs: now() - startedAt,
    evicted: result.evicted,
    live: result.live,
    instantiated: result.instantiated,
    logs: result.logs,
    ...(result.metrics.length > 0 ? { metrics: result.metrics } : {}),
  };
  if (!result.ok) return { ...base, ok: false, kind: result.kind, message: result.message };
  return { ...base, ok: true, value: result.value };
}
