/**
 * The OpenTelemetry side of the plugin, imported only when tracing is on (index.ts loads it with a dynamic
 * import): a tracer provider of its own (not registered globally: a process may run several kernels, and no
 * global context manager is installed, so no async_hooks cost), a bounded batch queue (batch.ts) holding spans
 * already written as OTLP protobuf or JSON (otlp-proto.ts, otlp-json.ts), the OTLP/HTTP exporter (exporter.ts),
 * and the W3C trace-context propagator.
 */
import { ROOT_CONTEXT, type Context, type TextMapGetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AlwaysOffSampler, AlwaysOnSampler, BasicTracerProvider, ParentBasedSampler, TraceIdRatioBasedSampler, type Sampler } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { BatchExport, batchOptions, type SpanCounters } from './batch.ts';
import { otlpExporter } from './exporter.ts';
import { jsonEncoding } from './otlp-json.ts';
import { protobufEncoding } from './otlp-proto.ts';
import type { TracingOptions } from './options.ts';
import { Spans } from './spans.ts';

/** A tracestate this long, or with more list members than this, is dropped whole, unparsed (W3C trace-context §3.3.1.5). */
const MAX_TRACESTATE_CHARS = 4096;
const MAX_TRACESTATE_MEMBERS = 32;

function sampler(options: TracingOptions): Sampler {
  switch (options.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(options.ratio);
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(options.ratio) });
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

/** What the propagator reads of a request: its headers, through ProxyExchange.header. */
interface HeaderSource {
  header(name: string): string | undefined;
}

function boundedTraceState(value: string | undefined): string | undefined {
  if (value === undefined || value.length > MAX_TRACESTATE_CHARS) return undefined;
  let members = 1;
  for (let i = value.indexOf(','); i !== -1; i = value.indexOf(',', i + 1)) if (++members > MAX_TRACESTATE_MEMBERS) return undefined;
  return value;
}

const GETTER: TextMapGetter<HeaderSource> = {
  get: (carrier, key) => (key === 'tracestate' ? boundedTraceState(carrier.header(key)) : carrier.header(key)),
  keys: () => ['traceparent', 'tracestate'],
};

export interface Tracing {
  spans: Spans;
  counters: SpanCounters;
  shutdown(): Promise<void>;
}

export function startTracing(options: TracingOptions, version: string, onError: (error: unknown) => void): Tracing {
  const counters: SpanCounters = { exported: 0, failed: 0, dropped: 0 };
  // Spans waiting for export are bounded (8,192 unless OTEL_BSP_MAX_QUEUE_SIZE says otherwise): past it new
  // spans are dropped and counted, so an unreachable or slow collector never grows memory.
  const processor = new BatchExport(
    otlpExporter({ url: options.tracesUrl, headers: options.headers, timeoutMillis: 10_000, encoding: options.protocol === 'http/json' ? jsonEncoding : protobufEncoding }),
    batchOptions(),
    counters,
  );
  // One resource object for SDK spans and request records: the OTLP writer groups spans by its identity.
  const resource = resourceFromAttributes({ [ATTR_SERVICE_NAME]: options.serviceName, [ATTR_SERVICE_VERSION]: version });
  const chosen = sampler(options);
  const provider = new BasicTracerProvider({
    resource,
    sampler: chosen,
    spanProcessors: [processor],
    // Values a client chose are cut to 1 KB where they are set (spans.ts): a length limit here would be
    // checked on every attribute of every span.
    spanLimits: { attributeCountLimit: 64, eventCountLimit: 32 },
  });
  const propagator = new W3CTraceContextPropagator();
  const tracer = provider.getTracer('tenement', version);
  const spans = new Spans(
    tracer,
    // Most requests carry no traceparent: then the propagator (which would find none) is not called.
    { extract: (source: HeaderSource): Context => (source.header('traceparent') === undefined ? ROOT_CONTEXT : propagator.extract(ROOT_CONTEXT, source, GETTER)) },
    chosen,
    { resource, scope: { name: 'tenement', version }, onEnd: (span) => processor.onEnd(span) },
    options.sampler === 'always_on' || options.sampler === 'parentbased_always_on',
  );
  return {
    spans,
    counters,
    async shutdown() {
      spans.endAll();
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, options.shutdownMs);
      });
      try {
        await Promise.race([provider.shutdown().catch(onError), late]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
