/**
 * Decides which wasmtime calls may run on the main thread (wasmtime/inline.ts), so that running them there can
 * never starve the proxy and every other tenant it serves. A call runs inline only while:
 *  - all inline calls together used less than SHARE_OF_WINDOW of the current window: the rest of the main
 *    thread stays for the proxy and everything else, however many calls arrive (past it they go to the pool);
 *  - its instance used less than KEY_SHARE_OF_WINDOW of it while other instances ran inline too (in this window or
 *    the last): one tenant cannot take the whole inline share from the others. Alone, it may use all of it,
 *    which is what one request at a time needs (the guest is most of the work then);
 *  - its instance is not benched: a call that reached for a file, a sleep or a socket, or calls that take longer
 *    than LONG_CALL_MS on average (a moving average, so one call slowed by a GC or a busy host does not count;
 *    a runaway stopped at the budget crosses it within a few calls), bench its instance for BENCH_MS, doubled
 *    on each repeat up to MAX_BENCH_MS: a guest whose calls do file work or run long settles on the pool and
 *    tries the main thread again only rarely;
 *  - its module is not benched: calls that take long on average count against the module too, whichever tenants
 *    made them, so a hostile module cannot get fresh tries through fresh tenants (auto-created per subdomain).
 *    A module is never benched for reaching for files: that is what its tenants' own averages are for.
 * Times are the main thread's CPU time a call took (not wall time, which a loaded host stretches for every call
 * alike). Counts are per window and keys are bounded (MAX_KEYS): a flood of distinct instances cannot grow the maps.
 */

/** The window over which main-thread time is shared out. */
export const WINDOW_MS = 100;
/** The most of a window all inline calls together may take. */
export const SHARE_OF_WINDOW = 0.75;
/** The most of a window one instance's inline calls may take while others run inline too. */
export const KEY_SHARE_OF_WINDOW = 0.4;
/** Inline calls longer than this on average bench their instance: the hop to a worker costs far less. */
export const LONG_CALL_MS = 1;
/** Weight of the newest call in an instance's moving average of inline call times. */
const AVERAGE_WEIGHT = 1 / 8;
/** The most one call counts in that average: about the budget a runaway is stopped at (wasmtime/inline.ts). */
const MAX_SAMPLE_MS = 3;
export const BENCH_MS = 1_000;
export const MAX_BENCH_MS = 60_000;
/** Instances tracked at once (per window, and benched); past it, new ones are sent to the pool. */
export const MAX_KEYS = 4_096;

/** A module's entry in the same maps as the instances' (instance keys never hold a NUL). */
const moduleKey = (module: string): string => `\0module\0${module}`;

interface Bench {
  until: number;
  /** How long the last benching lasted: the next one doubles it. */
  lasted: number;
}

export class InlineGovernor {
  private windowStartedAt = -Infinity;
  private used = 0;
  private readonly usedBy = new Map<string, number>();
  private readonly benched = new Map<string, Bench>();
  /** Moving average of each instance's inline call times, most recently used last. */
  private readonly average = new Map<string, number>();
  /** Instances that ran inline in the last window. */
  private lastWindowKeys = 0;

  /** Whether a call of `key` (an instance of `module`) may run on the main thread now (`at`: ms, any steady clock). */
  allows(key: string, module: string, at: number): boolean {
    if (at - this.windowStartedAt >= WINDOW_MS) {
      // A window with no call at all since the last one ended means no one shared it either.
      this.lastWindowKeys = at - this.windowStartedAt < 2 * WINDOW_MS ? this.usedBy.size : 0;
      this.windowStartedAt = at;
      this.used = 0;
      this.usedBy.clear();
    }
    if (this.isBenched(key, at) || this.isBenched(moduleKey(module), at)) return false;
    if (this.used >= SHARE_OF_WINDOW * WINDOW_MS) return false;
    const used = this.usedBy.get(key);
    if (used === undefined) return this.usedBy.size < MAX_KEYS;
    const alone = this.usedBy.size === 1 && this.lastWindowKeys <= 1;
    return alone || used < KEY_SHARE_OF_WINDOW * WINDOW_MS;
  }

  /** A call of `key` (of `module`) ran inline for `ms`; `bench`: bench the instance now (it reached for a file). */
  ran(key: string, module: string, ms: number, bench: boolean, at: number): void {
    this.used += ms;
    if (this.usedBy.has(key) || this.usedBy.size < MAX_KEYS) this.usedBy.set(key, (this.usedBy.get(key) ?? 0) + ms);
    if (this.longOnAverage(key, ms) || bench) this.bench(key, at);
    if (this.longOnAverage(moduleKey(module), ms)) this.bench(moduleKey(module), at);
  }

  /** Instances and modules benched now (for tests). */
  benchedCount(at: number): number {
    let count = 0;
    for (const bench of this.benched.values()) if (at < bench.until) count++;
    return count;
  }

  private isBenched(key: string, at: number): boolean {
    const bench = this.benched.get(key);
    return bench !== undefined && at < bench.until;
  }

  /** Adds a call to the average of `key`; true (and the average forgotten) when it is now past LONG_CALL_MS. */
  private longOnAverage(key: string, ms: number): boolean {
    // A call held up far past the line by the host (a stall, a GC) weighs as a call at the budget would.
    const average = (this.average.get(key) ?? 0) * (1 - AVERAGE_WEIGHT) + Math.min(ms, MAX_SAMPLE_MS) * AVERAGE_WEIGHT;
    this.average.delete(key);
    if (average > LONG_CALL_MS) return true;
    this.average.set(key, average);
    if (this.average.size > MAX_KEYS) this.average.delete(this.average.keys().next().value as string);
    return false;
  }

  private bench(key: string, at: number): void {
    const last = this.benched.get(key);
    // A benching that ended long ago (as long again as it lasted, and a minute) is forgiven: start over.
    const repeat = last !== undefined && at < last.until + last.lasted + MAX_BENCH_MS;
    const lasted = repeat ? Math.min(MAX_BENCH_MS, last.lasted * 2) : BENCH_MS;
    this.benched.delete(key);
    this.benched.set(key, { until: at + lasted, lasted });
    // Oldest first; a forgotten one may try the main thread once more, at most one budget's worth.
    while (this.benched.size > MAX_KEYS) this.benched.delete(this.benched.keys().next().value as string);
  }
}
