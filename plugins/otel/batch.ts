/**
 * The export queue for every span Tenement makes: request records (records.ts) are handed to it directly, SDK
 * spans (wake, spawn, health, restart) through the tracer provider, whose span processor it is. Each span is
 * written into its batch's buffer in the export encoding (otlp-proto.ts or otlp-json.ts) the moment it ends,
 * so a span is garbage right away (young, cheap to collect) and a batch is one buffer, not 2,048 objects aged
 * into the old generation while they wait. Batches of up to `batchSize` spans leave at most every `delayMs`,
 * one export in flight at a time: a slow or dead collector fills the queue, and past `maxQueue` spans new ones
 * are dropped and counted, so memory stays bounded and requests never wait. What the SDK's BatchSpanProcessor
 * does, with the count of dropped spans (the SDK's only goes to a meter) and the export run after the span's
 * own call, not inside it.
 */
import { TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult, type InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Bytes } from './bytes.ts';
import type { SpanEncoding } from './encoding.ts';

/** A batch is sealed once its spans take this much (a collector's body limit is usually 20 MiB or more). */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
/** A buffer that grew past this for an unusual batch is not kept for the next one (a batch of request spans is about 600 KB). */
const MAX_KEPT_BYTES = 1024 * 1024;
const FIRST_BUFFER_BYTES = 64 * 1024;

/** Spans of one resource and instrumentation scope, written one after the other in the export encoding. */
export interface EncodedBatch {
  readonly resource: Resource;
  readonly scope: InstrumentationScope;
  spans: number;
  readonly body: Bytes;
}

/** Sends a batch; it reads `batch.body` only during the export() call, which may then reuse it. */
export interface BatchExporter {
  readonly encoding: SpanEncoding;
  export(batch: EncodedBatch, done: (result: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

function sameScope(a: InstrumentationScope, b: InstrumentationScope): boolean {
  return a === b || (a.name === b.name && (a.version ?? '') === (b.version ?? '') && (a.schemaUrl ?? '') === (b.schemaUrl ?? ''));
}

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

/**
 * Ours unless the standard OTEL_BSP_* variables say otherwise; a batch is never larger than the queue. Four
 * times the SDK's defaults (2,048 and 512): each export costs the server about 240 µs of main-thread CPU in
 * the HTTP client whatever its size (and the collector a request's worth), so at full load 512-span batches
 * cost about 1 µs per traced request, 2,048-span ones a quarter of that. A queue of 8,192 spans holds about
 * 2.4 MB, a batch about 600 KB.
 */
export function batchOptions(env: Readonly<Record<string, string | undefined>> = process.env): BatchOptions {
  const maxQueue = fromEnv(env, 'OTEL_BSP_MAX_QUEUE_SIZE') ?? 8192;
  return {
    maxQueue,
    batchSize: Math.min(maxQueue, fromEnv(env, 'OTEL_BSP_MAX_EXPORT_BATCH_SIZE') ?? 2048),
    delayMs: fromEnv(env, 'OTEL_BSP_SCHEDULE_DELAY') ?? 1_000,
    exportTimeoutMs: fromEnv(env, 'OTEL_BSP_EXPORT_TIMEOUT') ?? 30_000,
  };
}

export class BatchExport implements SpanProcessor {
  /** Full batches waiting, oldest first, and the one being filled. */
  private sealed: EncodedBatch[] = [];
  private open: EncodedBatch | null = null;
  /** Spans in `sealed` and `open` (the batch in flight no longer counts). */
  private queued = 0;
  /** Buffers of sent batches, written into again (at most as many as the queue can fill). */
  private readonly free: Bytes[] = [];
  private timer: NodeJS.Timeout | null = null;
  private soon: NodeJS.Immediate | null = null;
  private exporting: Promise<void> | null = null;
  private closed = false;

  constructor(
    private readonly exporter: BatchExporter,
    private readonly options: BatchOptions,
    readonly counters: SpanCounters,
  ) {}

  onStart(): void {}

  onEnd(span: ReadableSpan): void {
    if (this.closed || (span.spanContext().traceFlags & TraceFlags.SAMPLED) === 0) return;
    if (this.queued >= this.options.maxQueue) {
      this.counters.dropped += 1;
      return;
    }
    let batch = this.open;
    if (batch !== null && (batch.resource !== span.resource || !sameScope(batch.scope, span.instrumentationScope))) {
      this.seal();
      batch = null;
    }
    batch ??= this.openBatch(span);
    const before = batch.body.length;
    try {
      this.exporter.encoding.span(batch.body, span, batch.spans);
    } catch {
      // Never a span of Tenement's; whatever it was is left out, not half written.
      batch.body.length = before;
      this.counters.dropped += 1;
      return;
    }
    batch.spans += 1;
    this.queued += 1;
    if (batch.spans >= this.options.batchSize || batch.body.length >= MAX_BATCH_BYTES) this.seal();
    if (this.exporting !== null) return;
    if (this.sealed.length > 0) {
      // A full batch goes after the call that completed it (a request's end), not inside it.
      this.soon ??= setImmediate(() => {
        this.soon = null;
        this.next();
      });
    } else this.schedule();
  }

  private openBatch(span: ReadableSpan): EncodedBatch {
    const body = this.free.pop() ?? new Bytes(FIRST_BUFFER_BYTES);
    this.open = { resource: span.resource, scope: span.instrumentationScope, spans: 0, body };
    return this.open;
  }

  private seal(): void {
    if (this.open === null) return;
    if (this.open.spans > 0) this.sealed.push(this.open);
    else this.release(this.open.body);
    this.open = null;
  }

  private release(body: Bytes): void {
    if (this.free.length > this.options.maxQueue / this.options.batchSize + 1) return;
    body.reset(MAX_KEPT_BYTES, FIRST_BUFFER_BYTES);
    this.free.push(body);
  }

  private schedule(): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.next();
    }, this.options.delayMs);
    this.timer.unref();
  }

  /** Sends the next batch unless one is in flight; when it is done, what queued meanwhile follows. */
  private next(): void {
    if (this.exporting !== null) return;
    if (this.sealed.length === 0) this.seal();
    const batch = this.sealed.shift();
    if (batch === undefined) return;
    this.clearTimers();
    this.queued -= batch.spans;
    this.exporting = this.exportBatch(batch).finally(() => {
      this.exporting = null;
      if (this.closed) return;
      if (this.sealed.length > 0) this.next();
      else if (this.open !== null && this.open.spans > 0) this.schedule();
    });
  }

  private exportBatch(batch: EncodedBatch): Promise<void> {
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = (ok: boolean): void => {
        if (done) return;
        done = true;
        clearTimeout(timeout);
        if (ok) this.counters.exported += batch.spans;
        else this.counters.failed += batch.spans;
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
      this.release(batch.body);
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
      else if (this.queued > 0) {
        this.next();
        if (this.exporting === null) return;
      } else return;
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
