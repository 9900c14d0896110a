/**
 * The OTLP/HTTP export on a thread of its own. Sending a batch from the main thread cost it about 0.4-0.7 µs per
 * traced request (a 2,048-span body of ~600 KB written into a loopback socket, the HTTP client, the answer): as
 * much as writing the spans. Here the main thread only puts the request around the batch's spans (one copy,
 * exporter.ts) and hands its memory to the worker (transferred, not copied); the worker sends it with the SDK's
 * own transport, configured exactly as exporter.ts configures it (the same OTEL_EXPORTER_OTLP_* handling, the
 * timeout and retries), and hands the memory back after a 2xx for the next batch.
 *
 * The worker runs a few lines of CommonJS (eval'd, no module graph of ours: the same code from the sources and
 * from dist/) with no loader hooks (execArgv []). If it cannot start or dies, the exports waiting on it are
 * counted failed and the rest go from the main thread (exporter.ts), as before.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { BatchExporter, EncodedBatch } from './batch.ts';
import { Bytes } from './bytes.ts';
import { otlpExporter, type OtlpExporterOptions } from './exporter.ts';

/** A body buffer bigger than this (a batch of unusually large spans) is not kept for the next export. */
const MAX_SPARE = 4 * 1024 * 1024;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { OTLPExporterBase } = require(workerData.base);
const { convertLegacyHttpOptions, createOtlpHttpExportDelegate } = require(workerData.nodeHttp);
// The body comes written; a collector's answer is only read by the SDK to log a partial success.
const serializer = { serializeRequest: (item) => item.body, deserializeResponse: () => ({}) };
const delegate = createOtlpHttpExportDelegate(
  convertLegacyHttpOptions({ url: workerData.url, headers: workerData.headers, timeoutMillis: workerData.timeoutMillis }, 'TRACES', 'v1/traces', { 'Content-Type': workerData.contentType }),
  serializer,
  'otlp_http_span_exporter',
  { name: 'span', countItems: (item) => item.spans },
  undefined,
);
const base = new OTLPExporterBase(delegate);
parentPort.on('message', (message) => {
  if (message.shutdown) {
    base.shutdown().finally(() => parentPort.postMessage({ closed: true }));
    return;
  }
  const body = new Uint8Array(message.memory, 0, message.length);
  base.export({ body, spans: message.spans }, (result) => {
    const ok = result.code === 0;
    // The memory goes back only after a 2xx: after a timeout or an early answer the request may still read it.
    if (ok) parentPort.postMessage({ id: message.id, ok, memory: message.memory }, [message.memory]);
    else parentPort.postMessage({ id: message.id, ok, error: String(result.error && result.error.message || result.error || 'export failed') });
  });
});
`;

interface Reply {
  id?: number;
  ok?: boolean;
  memory?: ArrayBuffer;
  closed?: boolean;
}

interface Pending {
  done: (result: ExportResult) => void;
  /** The Bytes whose memory went to the worker: given it back after a 2xx. */
  out: Bytes;
}

/** The transfer list of a Bytes' memory: its Buffer must own its ArrayBuffer whole (Bytes allocates them unpooled). */
function ownMemory(out: Bytes): ArrayBuffer | null {
  const buffer = out.buffer;
  const memory = buffer.buffer;
  return memory instanceof ArrayBuffer && buffer.byteOffset === 0 && buffer.byteLength === memory.byteLength ? memory : null;
}

/** A BatchExporter sending from its own thread; `thread` is that thread while it runs (null once it is gone). */
export interface WorkerExporter extends BatchExporter {
  readonly thread: Worker | null;
}

export function workerExporter(options: OtlpExporterOptions): WorkerExporter {
  const encoding = options.encoding;
  const fallback = otlpExporter(options);
  const pending = new Map<number, Pending>();
  let next = 0;
  let spare: Bytes | undefined;
  let worker: Worker | null = null;
  let closing: Promise<void> | null = null;
  try {
    const require = createRequire(import.meta.url);
    worker = new Worker(WORKER_SOURCE, {
      eval: true,
      execArgv: [],
      // Its heap holds an HTTP client and one export at a time (the body is memory handed over, outside it): a
      // small young generation keeps its footprint down, and a cap bounds it (past it the thread dies, and the
      // exports go from the main thread).
      resourceLimits: { maxYoungGenerationSizeMb: 1, maxOldGenerationSizeMb: 32 },
      workerData: {
        base: require.resolve('@opentelemetry/otlp-exporter-base'),
        nodeHttp: require.resolve('@opentelemetry/otlp-exporter-base/node-http'),
        url: options.url,
        headers: options.headers,
        timeoutMillis: options.timeoutMillis,
        contentType: encoding.contentType,
      },
    });
  } catch {
    worker = null;
  }
  /** The worker is gone: what waited on it failed; later exports go from this thread. */
  const lost = (): void => {
    worker = null;
    for (const [, wait] of pending) wait.done({ code: ExportResultCode.FAILED, error: new Error('the export thread ended') });
    pending.clear();
  };
  if (worker !== null) {
    const thread = worker;
    // Idle, the thread keeps nothing alive; an export in flight does (refed while any is pending).
    thread.unref();
    thread.on('message', (reply: Reply) => {
      if (reply.id === undefined) return;
      const wait = pending.get(reply.id);
      if (wait === undefined) return;
      pending.delete(reply.id);
      if (pending.size === 0) thread.unref();
      if (reply.ok && reply.memory !== undefined && reply.memory.byteLength <= MAX_SPARE) {
        wait.out.buffer = Buffer.from(reply.memory);
        spare = wait.out;
      }
      wait.done(reply.ok ? { code: ExportResultCode.SUCCESS } : { code: ExportResultCode.FAILED, error: new Error('export failed') });
    });
    thread.on('error', () => undefined);
    thread.on('exit', () => {
      if (worker === thread) lost();
    });
  }
  return {
    encoding,
    get thread(): Worker | null {
      return worker;
    },
    export(batch: EncodedBatch, done: (result: ExportResult) => void): void {
      const thread = worker;
      if (thread === null || closing !== null) return fallback.export(batch, done);
      const out = spare ?? new Bytes(batch.body.length + 1024);
      spare = undefined;
      out.length = 0;
      encoding.request(batch.resource, batch.scope, batch.body.view(), out);
      const memory = ownMemory(out);
      if (memory === null) return fallback.export(batch, done);
      const id = ++next;
      pending.set(id, { done, out });
      thread.ref();
      thread.postMessage({ id, memory, length: out.length, spans: batch.spans }, [memory]);
    },
    async shutdown(): Promise<void> {
      const thread = worker;
      if (thread !== null) {
        closing ??= new Promise<void>((resolve) => {
          // Not refed: what could be sent was flushed before this (BatchExport.shutdown), and a thread still
          // waiting on a collector that never answers must not keep the process from exiting.
          thread.unref();
          const finish = (): void => {
            void thread.terminate().finally(resolve);
          };
          thread.on('message', (reply: Reply) => {
            if (reply.closed) finish();
          });
          thread.once('exit', () => resolve());
          thread.postMessage({ shutdown: true });
        });
        await closing;
      }
      await fallback.shutdown();
    },
  };
}
