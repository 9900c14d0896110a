import { setImmediate as nextTurn } from 'node:timers/promises';
import type { DeleteScope, LogStore } from './store.ts';

export interface RetentionLimits {
  /** Accounted bytes over all instances; 0 = no limit. */
  maxBytes: number;
  /** Lines older than this many ms are deleted; 0 = keep regardless of age. */
  maxAgeMs: number;
  /** Accounted bytes per instance (service:id); 0 = no limit. */
  perInstanceMaxBytes: number;
}

/**
 * Rows deleted per transaction: big enough to be efficient, small enough not to hold the event loop long
 * (about 15 ms per chunk, measured by bench/logs-search.ts).
 */
export const CHUNK_ROWS = 1_000;
/**
 * A budget that is exceeded is brought down to this share of itself, so a tenant logging steadily at its limit
 * triggers one clean-up every few seconds rather than one per flush.
 */
const LOW_WATER = 0.9;

/**
 * Deletes the oldest lines when a budget is exceeded: lines past `maxAge`, then each instance over its own
 * budget, then the whole store over the total. Work is done in chunks with a turn of the event loop between
 * them; one run at a time (a request during a run is remembered and run right after).
 */
export class Retention {
  private running: Promise<void> | null = null;
  private again = false;
  private stopped = false;

  constructor(
    private readonly store: LogStore,
    private readonly limits: RetentionLimits,
    private readonly events: { onDeleted(lines: number): void; onError(error: unknown): void },
  ) {}

  /** Whether a byte budget is exceeded now (cheap: reads the in-memory usage mirror). */
  overBudget(): boolean {
    const { maxBytes, perInstanceMaxBytes } = this.limits;
    if (maxBytes > 0 && this.store.total.bytes > maxBytes) return true;
    if (perInstanceMaxBytes > 0) {
      for (const usage of this.store.instances()) if (usage.bytes > perInstanceMaxBytes) return true;
    }
    return false;
  }

  /** Runs enforcement (or queues one more run after the current one); resolves when it is done. */
  enforce(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        try {
          await this.run();
        } catch (error) {
          this.events.onError(error);
        }
      } while (this.again && !this.stopped);
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Stops between two chunks (shutdown must not wait for a long clean-up) and waits for that; no more runs. */
  async stop(): Promise<void> {
    this.stopped = true;
    while (this.running) await this.running;
  }

  private async run(): Promise<void> {
    const { maxBytes, maxAgeMs, perInstanceMaxBytes } = this.limits;
    if (maxAgeMs > 0) await this.drain({ kind: 'olderThan', at: Date.now() - maxAgeMs }, () => Infinity);
    if (perInstanceMaxBytes > 0) {
      for (const usage of this.store.instances()) {
        if (usage.bytes <= perInstanceMaxBytes) continue;
        const { service, id } = usage;
        await this.drain({ kind: 'instance', service, id }, () => (this.store.usageOf(service, id)?.bytes ?? 0) - perInstanceMaxBytes * LOW_WATER);
      }
    }
    if (maxBytes > 0 && this.store.total.bytes > maxBytes) {
      await this.drain({ kind: 'all' }, () => this.store.total.bytes - maxBytes * LOW_WATER);
    }
  }

  /** Deletes chunk after chunk in `scope` while `excess()` is positive and lines remain. */
  private async drain(scope: DeleteScope, excess: () => number): Promise<void> {
    while (!this.stopped) {
      const want = excess();
      if (want <= 0) return;
      const { lines } = this.store.deleteOldest(scope, want, CHUNK_ROWS);
      if (lines > 0) this.events.onDeleted(lines);
      // A short chunk means the target was met or the scope ran out of lines.
      if (lines < CHUNK_ROWS) return;
      await nextTurn();
    }
  }
}
