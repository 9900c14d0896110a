import type { LogRecord, LogStore } from './store.ts';

export interface WriterOptions {
  /** Longest a captured line waits in memory before it is written. */
  flushMs: number;
  /** A batch this large is written at once (on the next turn of the event loop) instead of waiting. */
  flushLines: number;
  /** Called after every successful write, with the number of lines written. */
  onFlush(lines: number): void;
  onError(error: unknown, dropped: number): void;
}

/**
 * Collects captured lines in memory and writes them in batches, one transaction each: the `log` hook runs
 * synchronously for every line an instance prints, so a write (and an fsync) per line would stall the proxy.
 */
export class LogWriter {
  private pending: LogRecord[] = [];
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private closed = false;

  constructor(
    private readonly store: LogStore,
    private readonly options: WriterOptions,
  ) {}

  get pendingLines(): number {
    return this.pending.length;
  }

  add(record: LogRecord): void {
    if (this.closed) return;
    this.pending.push(record);
    if (this.pending.length >= this.options.flushLines) {
      this.immediate ??= setImmediate(() => this.flush());
    } else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.options.flushMs);
      this.timer.unref();
    }
  }

  /** Writes everything pending now (also used before a query or a stream backfill, so they see every line). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    try {
      this.store.insert(batch);
    } catch (error) {
      // A full disk or a locked database must not take the server down; the lines are lost, and said so.
      this.options.onError(error, batch.length);
      return;
    }
    this.options.onFlush(batch.length);
  }

  /** Final flush; later lines are ignored (the store is about to close). */
  close(): void {
    this.flush();
    this.closed = true;
  }
}
