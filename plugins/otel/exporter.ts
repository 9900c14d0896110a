/**
 * The OTLP/HTTP span exporter: the SDK's own transport (`@opentelemetry/otlp-exporter-base`: the keep-alive
 * agent, the timeout, retries with backoff within it, OTEL_EXPORTER_OTLP_* handling such as compression and
 * certificates, the bounded response read) configured exactly as `OTLPTraceExporter` configures it, with the
 * body written by otlp-json.ts instead of the SDK's JsonTraceSerializer.
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { encodeTraceRequest } from './otlp-json.ts';

/** What a collector answers (ExportTraceServiceResponse); only a partial success is looked at (and logged by the SDK). */
interface TraceResponse {
  partialSuccess?: { rejectedSpans?: number; errorMessage?: string };
}

/** A body buffer bigger than this (a batch of unusually large spans) is not kept for the next export. */
const MAX_SPARE = 4 * 1024 * 1024;

const spanCount = { name: 'span' as const, countItems: (spans: ReadableSpan[]): number => spans.length };

export function otlpJsonExporter(options: { url: string; headers: Record<string, string>; timeoutMillis: number }): SpanExporter {
  /** The buffer of the last body a collector accepted, written into again by the next export. */
  let spare: Buffer | undefined;
  /** The buffer of the body the current export call serialized (the delegate serializes synchronously, or not at all). */
  let written: Buffer | undefined;
  const serializer = {
    serializeRequest(spans: ReadableSpan[]): Uint8Array {
      const { bytes, buffer } = encodeTraceRequest(spans, spare);
      spare = undefined;
      written = buffer;
      return bytes;
    },
    deserializeResponse(data: Uint8Array): TraceResponse {
      if (data.length === 0) return {};
      try {
        return JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as TraceResponse;
      } catch {
        // A collector answering 2xx with something else than JSON: the spans were still accepted.
        return {};
      }
    },
  };
  const delegate = createOtlpHttpExportDelegate(
    convertLegacyHttpOptions({ url: options.url, headers: options.headers, timeoutMillis: options.timeoutMillis }, 'TRACES', 'v1/traces', {
      'Content-Type': 'application/json',
    }),
    serializer,
    'otlp_http_span_exporter',
    spanCount,
    undefined,
  );
  const base = new OTLPExporterBase<ReadableSpan[]>(delegate);
  return {
    export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
      written = undefined;
      let buffer: Buffer | undefined;
      base.export(spans, (result) => {
        // Only after a 2xx: the collector has read the whole body. (After a timeout or an early answer the
        // request may still be writing from it.)
        if (buffer !== undefined && buffer.length <= MAX_SPARE && result.code === ExportResultCode.SUCCESS) spare = buffer;
        done(result);
      });
      buffer = written;
      written = undefined;
    },
    shutdown: () => base.shutdown(),
    forceFlush: () => base.forceFlush(),
  };
}
