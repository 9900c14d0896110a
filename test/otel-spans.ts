/** Spans for the otel encoders' tests: Tenement's own span records and the SDK's, on one resource and scope. */
import { TraceFlags, type Attributes, type SpanContext, type SpanKind } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, type ReadableSpan, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { SpanRecord, type RecordSink } from '../plugins/otel/records.ts';

export const resource = resourceFromAttributes({ 'service.name': 'tenement', 'service.version': '1.2.3' });
export const scope = { name: 'tenement', version: '1.2.3' };
export const sink: RecordSink = { resource, scope, onEnd() {} };
export const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';

/** One of Tenement's span records (the request spans), ended at `end`. */
export function record(name: string, kind: SpanKind, spanId: string, parent: SpanContext | undefined, start: number, end: number, attributes: Attributes): SpanRecord {
  const span = new SpanRecord(sink, name, kind, { traceId: TRACE, spanId, traceFlags: TraceFlags.SAMPLED }, parent, start, attributes);
  span.end = end;
  return span;
}

/** SDK spans (as the wake, spawn, health and restart spans are), collected when they end. */
export function sdkSpans(make: (tracer: ReturnType<BasicTracerProvider['getTracer']>) => void): ReadableSpan[] {
  const ended: ReadableSpan[] = [];
  const collect: SpanProcessor = { onStart() {}, onEnd: (span) => ended.push(span), forceFlush: async () => {}, shutdown: async () => {} };
  const provider = new BasicTracerProvider({ resource, spanProcessors: [collect] });
  make(provider.getTracer('tenement', '1.2.3'));
  return ended;
}
