/**
 * How spans are written for export: OTLP protobuf (otlp-proto.ts, the default) or OTLP JSON (otlp-json.ts),
 * chosen by `settings.otel.protocol` or OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL (options.ts). Each span is
 * written into its batch's buffer when it ends (batch.ts); the request around a batch's spans when it is sent.
 */
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { Bytes } from './bytes.ts';

/** What a collector answers (ExportTraceServiceResponse); only a partial success is looked at (and logged by the SDK). */
export interface TraceResponse {
  partialSuccess?: { rejectedSpans?: number; errorMessage?: string };
}

export interface SpanEncoding {
  readonly contentType: string;
  /** Appends `span` to a batch's spans, `count` of which are already written. */
  span(out: Bytes, span: ReadableSpan, count: number): void;
  /** The whole export request for a batch: its spans (as span() wrote them) under their resource and scope. */
  request(resource: Resource, scope: InstrumentationScope, spans: Buffer, out: Bytes): void;
  decodeResponse(data: Uint8Array): TraceResponse;
}
