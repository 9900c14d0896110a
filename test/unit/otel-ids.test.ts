// Request span ids are written into protobuf by copying their bytes from the id pool (plugins/otel/ids.ts) while
// the pool still holds them, and decoded from their hex otherwise: a request that outlives refills of the pool,
// a trace continued from a caller's traceparent. Either way the exported ids are those of the traceparent the
// instance got.
import assert from 'node:assert/strict';
import test from 'node:test';
import { ROOT_CONTEXT } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { AlwaysOnSampler, BasicTracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { InstanceView, ProxyExchange } from '../../core/types.ts';
import { Bytes } from '../../plugins/otel/bytes.ts';
import { protobufEncoding, writeSpanProto } from '../../plugins/otel/otlp-proto.ts';
import { Spans } from '../../plugins/otel/spans.ts';
import { decodeOtlpProto } from '../otlp-proto.ts';
import { resource, scope } from '../otel-spans.ts';

const instance = {
  service: 'app',
  id: 'a',
  key: 'app:a',
  state: 'running',
  tier: 'process',
  handle: { address: { host: '127.0.0.1', port: 40000 }, inProcess: false },
} as unknown as InstanceView;

function tracer(): { spans: Spans; ended: ReadableSpan[] } {
  const ended: ReadableSpan[] = [];
  const propagator = new W3CTraceContextPropagator();
  const spans = new Spans(
    new BasicTracerProvider({ resource }).getTracer('tenement'),
    { extract: (source) => propagator.extract(ROOT_CONTEXT, source, { get: (carrier, key) => carrier.header(key), keys: () => [] }) },
    new AlwaysOnSampler(),
    { resource, scope, onEnd: (span) => ended.push(span) },
  );
  return { spans, ended };
}

function exchange(headers: Record<string, string> = {}): ProxyExchange {
  return {
    method: 'GET',
    target: '/x',
    hostname: 'app.localhost',
    remoteAddress: '127.0.0.1',
    upgrade: false,
    receivedAt: performance.now(),
    startedAt: 0,
    wakeMs: 0,
    header: (name: string) => headers[name],
  } as unknown as ProxyExchange;
}

/** Starts a request: its upstream span made, the traceparent the instance gets returned. */
function start(spans: Spans, ex: ProxyExchange): string {
  const headers: string[] = ['host', 'app.localhost'];
  spans.upstream({ exchange: ex, instance, headers });
  return headers[headers.indexOf('traceparent') + 1]!;
}

function end(spans: Spans, ex: ProxyExchange): void {
  spans.request({ exchange: ex, instance, method: 'GET', status: 200, durationMs: 1, wakeMs: 0 });
}

function exported(spans: readonly ReadableSpan[]): ReturnType<typeof decodeOtlpProto> {
  const body = new Bytes(4096);
  for (const span of spans) writeSpanProto(body, span);
  const out = new Bytes(4096);
  protobufEncoding.request(resource, scope, body.view(), out);
  return decodeOtlpProto(out.view());
}

function checkIds(spans: readonly ReadableSpan[], traceparent: string, callerSpan?: string): void {
  const [, traceId, clientSpanId] = traceparent.split('-');
  const [client, server] = exported(spans);
  assert.equal(client!.traceId, traceId);
  assert.equal(server!.traceId, traceId);
  assert.equal(client!.spanId, clientSpanId);
  assert.equal(client!.parentSpanId, server!.spanId);
  assert.equal(server!.spanId, spans[1]!.spanContext().spanId);
  assert.equal(server!.parentSpanId, callerSpan ?? '');
}

test('exported ids are the traceparent sent: copied from the pool, and decoded from hex once the pool was refilled since', () => {
  const { spans, ended } = tracer();
  const first = exchange();
  const sent = start(spans, first);
  end(spans, first);
  checkIds(ended.splice(0), sent);

  // A request that outlives several refills of the pool (32 bytes of ids a request, 32 KB a block).
  const long = exchange();
  const longSent = start(spans, long);
  for (let i = 0; i < 5_000; i++) {
    const ex = exchange();
    start(spans, ex);
    end(spans, ex);
  }
  ended.length = 0;
  end(spans, long);
  checkIds(ended.splice(0), longSent);

  // The caller's trace continued: its trace id and span id come from its header, not the pool.
  const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
  const callerSpan = '00f067aa0ba902b7';
  const continued = exchange({ traceparent: `00-${callerTrace}-${callerSpan}-01` });
  const continuedSent = start(spans, continued);
  assert.ok(continuedSent.startsWith(`00-${callerTrace}-`));
  end(spans, continued);
  checkIds(ended.splice(0), continuedSent, callerSpan);
});
