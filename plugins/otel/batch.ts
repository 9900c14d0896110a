/**
 * The export queue for every span Tenement makes: request records (records.ts) are handed to it directly, SDK
 * spans (wake, spawn, health, restart) through the tracer provider, whose span processor it is. One bounded
 * queue, batches of up to `batchSize` sent at most every `delayMs`, one export in flight at a time: a slow or
 * dead collector fills the queue, and past `maxQueue` new spans are dropped and counted, so memory stays
 * bounded and requests never wait. What the SDK's BatchSpanProcessor does, with the count of dropped spans
 * (the SDK's only goes to a meter) and the export run after the span's own call, not inside it.
 */
import { TraceFlags } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';

export interface SpanCounters {
  /** Spans the collector accepted. */
  exported: number;
  /** Spans whose export failed (collector unreachable, refusing, or too slow). */
  failed: number;
  /** Spans dropped before any export: the queue was full. */
  dropped: number;
}

export interface BatchOptions {
  maxQueue: number;
  batchSize: number;
  delayMs: number;
  /** How long one export may take before its spans are counted failed and the next batch goes. */
  exportTimeoutMs: number;
}

/** A positive integer from an OTEL_BSP_* variable, or undefined (unset, or not a positive integer: ignored). */
function fromEnv(env: Readonly<Record<string, string | undefined>>, name: string): number | undefined {
  const value = env[name]?.trim();
  if (!value || !/^\d+$/.test(value)) return undefined;
  const n = Number(value);
  return n > 0 && Number.isSafeInteger(n) ? n : undefined;
}

/** Ours unless the standard OTEL_BSP_* variables say otherwise; a batch is never larger than the queue. */
export function batchOptions(env: Readonly<Record<string, string | undefined>> = process.env): BatchOptions {
  const maxQueue = fromEnv(env, 'OTEL_BSP_MAX_QUEUE_SIZE') ?? 2048;
  return {
    maxQueue,
    batchSize: Math.min(maxQueue, fromEnv(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE') ?? 512),
    delayMs: fromEnv(env, 'OTEL_BSP_SCHEDULE_DELAY') ?? 1_000,
    exportTimeoutMs: fromEnv(env, 'OTEL_BSP_EXPORT_TIMEOUT') ?? 30_000,
  };
}

export class BatchExport implements SpanProcessor {
  private queue: ReadableSpan[] = [];
  private timer: NodeJS.Timeout | null = null;
  private soon: NodeJS.Immediate | null = null;
  private exporting: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly exporter: SpanExporter,
    private readonly options: BatchOptions,
    readonly counters: SpanCounters,
  ) {}

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (this.closed || (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    const queue = this.queue;
    if (queue.length >= this.options.maxQueue) {
      this.counters.dropped += 1;
      return;
    }
    queue.push(span);
    if (this.exporting !== null) return;
    if (queue.length >= this.options.batchSize) {
      // A full batch goes after the call that completed it (a request's end), not inside it.
      this.soon ??= setImmediate(() => {
        this.soon = null;
        this.next();
      });
    } else if (this.timer === null) {
      this.timer = setTimeout(() => {
        this.timer = null;
        this.next();
      }, this.options.delayMs);
      this.timer.unref();
    }
  }

  /** Sends the next batch unless one is in flight; when it is done, what queued meanwhile follows. */
  private next(): void {
    if (this.exporting !== null || this.queue.length === 0) return;
    this.clearTimers();
    this.exporting = this.exportBatch().finally(() => {
      this.exporting = null;
      const left = this.queue.length;
      if (left === 0 || this.closed) return;
      if (left >= this.options.batchSize) this.next();
      else if (this.timer === null) {
        this.timer = setTimeout(() => {
          this.timer = null;
          this.next();
        }, this.options.delayMs);
        this.timer.unref();
      }
    });
  }

  private exportBatch(): Promise<void> {
    const batch = this.queue.length <= this.options.batchSize ? this.queue : this.queue.slice(0, this.options.batchSize);
    this.queue = batch === this.queue ? [] : this.queue.slice(batch.length);
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = (ok: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(timeout);
        if (ok) this.counters.exported += batch.length;
        else this.counters.failed += batch.length;
        resolve();
      };
      // The exporter has its own deadline (10 s, with retries inside it); this one only keeps a stuck
      // exporter from holding the queue forever.
      const timeout = setTimeout(() => finish(false), this.options.exportTimeoutMs);
      timeout.unref();
      try {
        this.exporter.export(batch, (result) => finish(result.code === ExportResultCode.SUCCESS));
      } catch {
        finish(false);
      }
    });
  }

  private clearTimers(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.soon !== null) clearImmediate(this.soon);
    this.timer = null;
    this.soon = null;
  }

  /** Sends everything queued, batch after batch (the caller bounds the wait: a hanging collector never answers). */
  async forceFlush(): Promise<void> {
    for (;;) {
      if (this.exporting !== null) await this.exporting;
      else if (this.queue.length > 0) this.next();
      else return;
    }
  }

  async shutdown(): Promise<void> {
    if (this.closed) return;
    await this.forceFlush();
    this.closed = true;
    this.clearTimers();
    await this.exporter.shutdown();
  }
}
