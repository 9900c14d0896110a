/**
 * Short calls of WASI modules on wasmtime run on the main thread, where the request already is: no hop to a
 * worker and back, which on these hosts costs more than a short guest itself (two thread wake-ups, each on cold
 * caches after the thread slept). What makes it safe to run tenant code there:
 *  - the guest is stopped at the first epoch tick past INLINE_BUDGET_MS of the thread's CPU (inline-budget.ts),
 *    however it loops;
 *  - every WASI import that could block the thread, or change what the tenant keeps, is a stand-in that stops
 *    the guest before it takes effect (stand-ins.ts);
 *  - a guest stopped either way has done nothing visible outside its store, so the pool runs the same request
 *    again from the start, under the request's own deadline (counted from its arrival), with the request's
 *    output coming only from that run;
 *  - which calls may try it, and how much of the main thread they may take, is the governor's (inline-governor.ts).
 * Each call still gets a fresh store and instance that no other request ran in, made ahead after the last one
 * (prepared.ts), as in a worker.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WasmCallOutcome } from '../types.ts';
import { now } from '../protocol.ts';
import { threadId } from 'node:worker_threads';
import { INLINE_OUTPUT_BYTES, MAX_STDERR_BYTES, afterAnswer, freeStoreHere } from './prepared.ts';
import { claimTickerSlot, memfdPrefix, releaseTickerSlot, wasmtimeEngine } from './host.ts';
import { startConfigPreparer } from './config-preparer.ts';
import { runWasmtimeCommand, type Moved } from './run.ts';
import { inlineState, loadModule } from './worker-state.ts';
import { threadCpuMs } from './thread-cpu.ts';
import type { InlineGovernor } from '../inline-governor.ts';
import type { CompiledModule, WasiCallOptions } from '../pool.ts';

/** CPU time an inline guest may take before it is stopped and moved to the pool (checked at each 1 ms tick). */
export const INLINE_BUDGET_MS = 2;
/**
 * Below this wall time a call reports its wall time to the governor, an upper bound of its CPU time: the thread's
 * CPU clock is a system call (a few µs on these hosts), and counting a short call's stall too is harmless here
 * (the governor's averages only bench past 1 ms).
 */
const WALL_IS_CLOSE_ENOUGH_MS = 0.5;

export interface InlineCall {
  hash: string;
  artifact: string;
  adapter: string | null;
  capPages: number;
  ahead: boolean;
  instanceKey: string;
  args: string[];
  env: Record<string, string>;
  stdin: Uint8Array;
  dataDir: string | null;
  preopenAs: string;
  deadlineMs: number;
  /** When the request arrived (protocol.ts `now()`): its deadline counts from there. */
  submittedAt: number;
}

/**
 * What an inline attempt came to: the call's outcome, or why it must run in the pool; either way `ms`, the main
 * thread's CPU time it took (wall time where that clock cannot be read).
 */
export type InlineResult = { outcome: WasmCallOutcome; ms: number } | { moved: Moved; ms: number };

let afterAnswerQueued = false;
let empty: string | null = null;

/** A directory of this process's own that stays empty, removed when the process exits. */
function emptyDirectory(): string {
  if (empty !== null) return empty;
  const made = mkdtempSync(path.join(os.tmpdir(), 'tenement-inline-'));
  process.once('exit', () => rmSync(made, { recursive: true, force: true }));
  return (empty = made);
}

/** Runs the call on this thread; null when it cannot be tried here (no engine, no ticker slot, a failure of ours). */
export function runInline(call: InlineCall): InlineResult | null {
  const engine = wasmtimeEngine();
  if (!engine.shared) return null;
  const slot = claimTickerSlot();
  if (slot === null) return null;
  const state = inlineState(engine.shared);
  // The configs of this thread's stores are made on a thread of their own once it runs (config-preparer.ts).
  startConfigPreparer(engine.shared.library, memfdPrefix(threadId), INLINE_OUTPUT_BYTES, MAX_STDERR_BYTES, (...parts) => freeStoreHere(state, ...parts));
  const cells = state.running;
  // Loaded first, so that the time reported to the governor is the call's own, not a module's first load.
  try {
    loadModule(state, call.hash, call.artifact, call.adapter);
  } catch {
    releaseTickerSlot(cells, slot);
    return null; // the pool's run reports why
  }
  const started = now();
  const cpuStarted = threadCpuMs();
  let result;
  try {
    // The guest sees a preopen under its DATA_DIR name, as in the pool, but an empty one of ours: every call
    // that would reach into it is a stand-in, so the tenant's directory is never opened on this thread.
    const dataDir = call.dataDir === null ? null : emptyDirectory();
    const inline = { budgetMs: INLINE_BUDGET_MS, cpuStartedMs: cpuStarted };
    result = runWasmtimeCommand(engine.shared, { ...call, dataDir, deadlineAt: call.submittedAt + call.deadlineMs, slot, fuel: null, inline });
  } catch {
    // Ours, not the guest's (no temporary directory, say): nothing the guest did shows, so the pool runs it.
    return null;
  } finally {
    releaseTickerSlot(cells, slot);
  }
  const wall = now() - started;
  // The CPU time is at most the wall time: a short call reports that, without reading the clock again.
  const cpu = wall < WALL_IS_CLOSE_ENOUGH_MS ? wall : threadCpuMs() - cpuStarted;
  const ms = Number.isNaN(cpu) ? wall : cpu;
  // The spent store goes, and the next instance is made, once this turn's answers are written.
  if (!afterAnswerQueued) {
    afterAnswerQueued = true;
    setImmediate(() => {
      afterAnswerQueued = false;
      afterAnswer();
    });
  }
  if (!result.ok && result.moved !== undefined) return { moved: result.moved, ms };
  const timing = { queueMs: 0, runMs: wall, instantiated: true, inline: 'ran' as const };
  if (!result.ok) return { outcome: { ok: false, kind: result.kind, message: result.message, logs: result.logs, timing }, ms };
  return { outcome: { ok: true, value: { exitCode: result.exitCode, stdout: result.stdout }, logs: result.logs, timing }, ms };
}

/**
 * Tries `options` on the main thread when the call is one that may run there (a wasmtime module without fuel
 * metering) and the governor allows it; null when it was not tried. Reports the time taken to the governor.
 */
export function tryInline(governor: InlineGovernor, compiled: CompiledModule, options: WasiCallOptions, submittedAt: number): InlineResult | null {
  if (compiled.engine !== 'wasmtime' || compiled.fuel || options.fuel !== undefined) return null;
  if (!governor.allows(options.instanceKey, compiled.hash, submittedAt)) return null;
  const { hash, artifact, adapter, capPages } = compiled;
  const { instanceKey, args, env, stdin, dataDir, preopenAs, deadlineMs } = options;
  const result = runInline({ hash, artifact, adapter, capPages, ahead: compiled.ahead === true, instanceKey, args, env, stdin, dataDir, preopenAs, deadlineMs, submittedAt });
  // A guest that reached for a file (or a sleep, a socket), or wrote more than the main thread takes, will again:
  // its instance goes to the pool for a while. One that ran past the budget only adds the time to its average:
  // on a busy host any call may be kept off its core for a few ms, and a runaway's average crosses the line
  // within a few calls anyway.
  if (result) governor.ran(instanceKey, hash, result.ms, 'moved' in result && result.moved.why !== 'budget', now());
  return result;
}
