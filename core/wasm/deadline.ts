/**
 * A call's deadline as piscina's abort signal. piscina takes any object with `once`/`off` (its event-emitter
 * form); this one holds one listener and one timer. An AbortController costs ~25 µs of main-thread CPU per call
 * here (Node's EventTarget, plus piscina's listener bookkeeping on it), a tenth of a small function's whole call.
 */
export class Deadline {
  aborted = false;
  reason: string | undefined;
  /** A call still waiting for a thread (fair-share.ts): told first, so it leaves its lane. */
  waiter: { expire(): void } | null = null;
  private listener: (() => void) | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor(ms: number) {
    this.timer = setTimeout(() => this.fire(), Math.max(1, ms));
  }

  once(_event: 'abort', listener: () => void): void {
    this.listener = listener;
  }

  off(_event: 'abort', listener: () => void): void {
    if (this.listener === listener) this.listener = null;
  }

  /** What piscina's dist calls (its typings name `off`). */
  removeListener(event: 'abort', listener: () => void): void {
    this.off(event, listener);
  }

  /** The call ended in time: the timer goes, and a late abort can no longer happen. */
  clear(): void {
    clearTimeout(this.timer);
    this.listener = null;
  }

  private fire(): void {
    this.aborted = true;
    this.reason = 'deadline';
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.expire();
    const listener = this.listener;
    this.listener = null;
    listener?.();
  }
}

/** What `settledBy` gives when the time passed first. */
export const DEADLINE = Symbol('deadline');

/**
 * `promise`'s value, or DEADLINE when `ms` pass first. Never before: a timer counts from the event loop's cached
 * clock and can fire up to a millisecond (or a busy turn) early, so it is checked and set again if need be.
 */
export function settledBy<T>(promise: Promise<T>, ms: number): Promise<T | typeof DEADLINE> {
  let timer: NodeJS.Timeout | undefined;
  const at = performance.now() + ms;
  const passed = new Promise<typeof DEADLINE>((resolve) => {
    const check = (): void => {
      const left = at - performance.now();
      if (left <= 0) resolve(DEADLINE);
      else timer = setTimeout(check, Math.ceil(left));
    };
    check();
  });
  return Promise.race([promise, passed]).finally(() => clearTimeout(timer));
}
