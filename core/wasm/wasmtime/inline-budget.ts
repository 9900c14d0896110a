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
let budget = 0;
/** The thread's CPU time when the guest started, or NaN where that clock cannot be read (then wall time counts). */
let cpuAtStart = 0;
let wallAtStart = 0;
let deadlineAt = 0;
let callback: unknown = null;

const wallClock = (): number => performance.timeOrigin + performance.now();

/**
 * Whether the guest is still within its budget. The thread's CPU time is at most the wall time since the start, so
 * the clock (a system call, not a vDSO read: a few µs here) is only read once the wall time alone says nothing.
 */
function withinBudget(now: number): boolean {
  const wall = now - wallAtStart;
  if (wall < budget) return true;
  // A clock that cannot be read (NaN) is a budget spent.
  return Number.isNaN(cpuAtStart) ? false : threadCpuMs() - cpuAtStart < budget;
}

/**
 * Arms the budget on `store` for a guest starting now: `budgetMs` of this thread's CPU time from `cpuStartedMs`
 * (threadCpuMs(), read by the caller just before; NaN: count wall time), its own `deadline` (wall ms).
 */
export function armBudget(w: Wasmtime, store: Ptr, context: Ptr, budgetMs: number, deadline: number, cpuStartedMs: number): void {
  callback ??= koffi.register((_context: Ptr, _data: Ptr, delta: Ptr, kind: Ptr) => {
    const now = wallClock();
    if (now < deadlineAt && withinBudget(now)) {
      koffi.encode(delta, 'uint64_t', 1n);
      koffi.encode(kind, 'uint8_t', CONTINUE);
      return 0n;
    }
    stopped = now >= deadlineAt ? 'deadline' : 'budget';
    return w.wasmtime_error_new(stopped === 'budget' ? 'tenement: the main thread budget is spent' : 'tenement: the deadline passed') as Ptr;
  }, koffi.pointer(w.EpochDeadlineCallback));
  stopped = null;
  deadlineAt = deadline;
  budget = budgetMs;
  cpuAtStart = cpuStartedMs;
  wallAtStart = wallClock();
  w.wasmtime_store_epoch_deadline_callback(store, callback, 0n, 0n);
  w.wasmtime_context_set_epoch_deadline(context, 1n);
}

/** What stopped the last guest (then forgotten): its budget, its deadline, or nothing. */
export function takeBudgetStop(): 'budget' | 'deadline' | null {
  const was = stopped;
  stopped = null;
  return was;
}
