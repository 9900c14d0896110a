/**
 * A SpanExporter that hands each batch to a worker thread (export-worker.mjs) as compact records: the OTLP
 * JSON encoding and the HTTP POST, most of tracing's main-thread cost per request, run there. The batch
 * processor in front still bounds what waits (it sends one batch at a time and waits for its answer), and each
 * answer comes back after the worker's exporter finished (its own timeout bounds that).
 */
import { Worker } from 'node:worker_threads';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

export interface WorkerExporterOptions {
  url: string;
  headers: Record<string, string>;
  timeoutMillis: number;
}

type Answer = { type: 'done'; id: number; ok: boolean } | { type: 'closed' };

/** One span as an array (cheaper to clone across threads than an object with keys); export-worker.mjs reads it. */
function record(span: ReadableSpan): unknown[] {
  const context = span.spanContext();
  const parent = span.parentSpanContext;
  return [
    context.traceId,
    context.spanId,
    parent?.spanId,
    parent?.isRemote,
    context.traceFlags,
    context.traceState?.serialize(),
    span.name,
    span.kind,
    span.startTime[0],
    span.startTime[1],
    span.endTime[0],
    span.endTime[1],
    span.status.code,
    span.status.message,
    span.attributes,
    span.links.length === 0
      ? span.links
      : span.links.map((link) => ({ ...link, context: { ...link.context, traceState: link.context.traceState?.serialize() } })),
    span.events,
    span.droppedAttributesCount,
    span.droppedEventsCount,
    span.droppedLinksCount,
  ];
}

export class WorkerExporter implements SpanExporter {
  private readonly worker: Worker;
  private readonly pending = new Map<number, (result: ExportResult) => void>();
  private nextId = 1;
  /** The resource and scope the worker has (the same objects on every span of one provider: sent once). */
  private sentResource: ReadableSpan['resource'] | null = null;
  private sentScope: ReadableSpan['instrumentationScope'] | null = null;
  private closed: Promise<void> | null = null;
  private onClosed: (() => void) | null = null;

  constructor(options: WorkerExporterOptions) {
    this.worker = new Worker(new URL('./export-worker.mjs', import.meta.url), { workerData: options });
    // The export never keeps the process up by itself (shutdown flushes it explicitly).
    this.worker.unref();
    this.worker.on('message', (answer: Answer) => {
      if (answer.type === 'closed') return this.onClosed?.();
      const done = this.pending.get(answer.id);
      if (!done) return;
      this.pending.delete(answer.id);
      done({ code: answer.ok ? ExportResultCode.SUCCESS : ExportResultCode.FAILED });
    });
    this.worker.on('error', (error) => this.failAll(error));
    this.worker.on('exit', () => {
      this.failAll(new Error('trace export worker exited'));
      this.onClosed?.();
    });
  }

  private failAll(error: Error): void {
    for (const done of this.pending.values()) done({ code: ExportResultCode.FAILED, error });
    this.pending.clear();
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    if (this.closed) return done({ code: ExportResultCode.FAILED, error: new Error('exporter shut down') });
    const id = this.nextId++;
    this.pending.set(id, done);
    const first = spans[0];
    let resource: ReadableSpan['resource']['attributes'] | undefined;
    let scope: { name: string; version?: string; schemaUrl?: string } | undefined;
    if (first && first.resource !== this.sentResource) {
      this.sentResource = first.resource;
      resource = first.resource.attributes;
    }
    if (first && first.instrumentationScope !== this.sentScope) {
      this.sentScope = first.instrumentationScope;
      const { name, version, schemaUrl } = first.instrumentationScope;
      scope = { name, version, schemaUrl };
    }
    this.worker.postMessage({ type: 'export', id, records: spans.map(record), resource, scope });
  }

  /** Waits for the worker's exporter to finish what it sends, then ends the worker. */
  shutdown(): Promise<void> {
    this.closed ??= new Promise<void>((resolve) => {
      this.onClosed = resolve;
      this.worker.postMessage({ type: 'shutdown' });
    }).finally(() => this.worker.terminate());
    return this.closed;
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
}
