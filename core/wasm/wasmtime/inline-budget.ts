/**
 * The main thread's budget for a guest run there (inline.ts): CPU time of that thread (thread-cpu.ts), checked at
 * every epoch tick. The store's epoch deadline is one tick away and re-armed from a callback while the guest is
 * within its budget and its own deadline (wall time); past either, the callback stops the guest. A deadline
 * counted in ticks alone would be cut short whenever the ticker, kept off its core for a few ms, catches up
 * several ticks at once (host.ts), and one of wall time whenever the host keeps the main thread itself off its
 * core: a guest that had barely started would be stopped, and moved to the pool for nothing.
 */
import { koffi } from './koffi-lazy.ts';
import type { Ptr, Wasmtime } from './ffi.ts';
import { threadCpuMs } from './thread-cpu.ts';

const CONTINUE = 0;
/** What stopped the guest run last: its budget, its own deadline, or nothing (null). */
let stopped: 'budget' | 'deadline' | null = null;
let until = 0;
/** The budget is counted in this thread's CPU time; false only where that clock cannot be read (then wall time). */
let byCpu = true;
let deadlineAt = 0;
let callback: unknown = null;

const wallClock = (): number => performance.timeOrigin + performance.now();

/** Arms the budget on `store` for a guest starting now: `budgetMs` of this thread's CPU, its own `deadline` (wall ms). */
export function armBudget(w: Wasmtime, store: Ptr, context: Ptr, budgetMs: number, deadline: number): void {
  callback ??= koffi.register((_context: Ptr, _data: Ptr, delta: Ptr, kind: Ptr) => {
    const now = wallClock();
    // A clock that cannot be read (NaN) is a budget spent.
    if ((byCpu ? threadCpuMs() : now) < until && now < deadlineAt) {
      koffi.encode(delta, 'uint64_t', 1n);
      koffi.encode(kind, 'uint8_t', CONTINUE);
      return 0n;
    }
    stopped = now >= deadlineAt ? 'deadline' : 'budget';
    return w.wasmtime_error_new(stopped === 'budget' ? 'tenement: the main thread budget is spent' : 'tenement: the deadline passed') as Ptr;
  }, koffi.pointer(w.EpochDeadlineCallback));
  stopped = null;
  deadlineAt = deadline;
  const cpu = threadCpuMs();
  byCpu = !Number.isNaN(cpu);
  until = (byCpu ? cpu : wallClock()) + budgetMs;
  w.wasmtime_store_epoch_deadline_callback(store, callback, 0n, 0n);
  w.wasmtime_context_set_epoch_deadline(context, 1n);
}

/** What stopped the last guest (then forgotten): its budget, its deadline, or nothing. */
export function takeBudgetStop(): 'budget' | 'deadline' | null {
  const was = stopped;
  stopped = null;
  return was;
}
