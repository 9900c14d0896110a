/**
 * The main thread's budget for a guest run there (inline.ts), kept by the wall clock. The store's epoch deadline is
 * one tick away and re-armed from a callback at every tick while the guest is within its budget and its own
 * deadline; past either, the callback stops the guest. A deadline counted in ticks alone would be cut short
 * whenever the ticker, kept off its core for a few ms, catches up several ticks at once (host.ts): a guest that
 * had barely started would be stopped, and moved to the pool for nothing.
 */
import { koffi } from './koffi-lazy.ts';
import type { Ptr, Wasmtime } from './ffi.ts';

const CONTINUE = 0;
/** What stopped the guest run last: its budget, its own deadline, or nothing (null). */
let stopped: 'budget' | 'deadline' | null = null;
let until = 0;
let deadlineAt = 0;
let callback: unknown = null;

const wallClock = (): number => performance.timeOrigin + performance.now();

/** Arms the budget on `store` for a guest starting now: `budgetMs` of the main thread, its own `deadline` (wall ms). */
export function armBudget(w: Wasmtime, store: Ptr, context: Ptr, budgetMs: number, deadline: number): void {
  callback ??= koffi.register((_context: Ptr, _data: Ptr, delta: Ptr, kind: Ptr) => {
    const now = wallClock();
    if (now < until && now < deadlineAt) {
      koffi.encode(delta, 'uint64_t', 1n);
      koffi.encode(kind, 'uint8_t', CONTINUE);
      return 0n;
    }
    stopped = now >= deadlineAt ? 'deadline' : 'budget';
    return w.wasmtime_error_new(stopped === 'budget' ? 'tenement: the main thread budget is spent' : 'tenement: the deadline passed') as Ptr;
  }, koffi.pointer(w.EpochDeadlineCallback));
  stopped = null;
  deadlineAt = deadline;
  until = wallClock() + budgetMs;
  w.wasmtime_store_epoch_deadline_callback(store, callback, 0n, 0n);
  w.wasmtime_context_set_epoch_deadline(context, 1n);
}

/** What stopped the last guest (then forgotten): its budget, its deadline, or nothing. */
export function takeBudgetStop(): 'budget' | 'deadline' | null {
  const was = stopped;
  stopped = null;
  return was;
}
