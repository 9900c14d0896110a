// plugins/otel/shared-attributes.ts and records.ts SharedAttributes: the attributes request spans share are made
// once per instance (bounded), written once, and read back exactly as if each span held them all.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SpanKind } from '@opentelemetry/api';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { InstanceView } from '../../core/types.ts';
import { Bytes } from '../../plugins/otel/bytes.ts';
import { jsonEncoding } from '../../plugins/otel/otlp-json.ts';
import { protobufEncoding } from '../../plugins/otel/otlp-proto.ts';
import { SharedAttributes, SpanRecord } from '../../plugins/otel/records.ts';
import { SharedAttributeCache } from '../../plugins/otel/shared-attributes.ts';
import { decodeOtlpProto } from '../otlp-proto.ts';
import { decodeOtlpJson } from '../otlp-receiver.ts';
import { TRACE, resource, scope, sink } from '../otel-spans.ts';

function instance(service: string, id: string, handle: object | null): InstanceView {
  return { service, id, key: `${service}:${id}`, tier: 'process', state: 'running', handle } as unknown as InstanceView;
}

function body(encoding: typeof protobufEncoding, spans: readonly ReadableSpan[]): Buffer {
  const out = new Bytes(64);
  spans.forEach((span, i) => encoding.span(out, span, i));
  const request = new Bytes(64);
  encoding.request(resource, scope, out.view(), request);
  return Buffer.from(request.view());
}

test('a span with shared attributes is written, in protobuf and JSON, as the SDK writes the same span holding them all; changing a shared one changes that span alone', () => {
  const cache = new SharedAttributeCache();
  const alice = instance('notes', 'alice', { address: { host: '127.0.0.1', port: 4100 } });
  const shared = cache.server(alice, 'GET', 'alice.notes.localhost');
  const make = (spanId: string, path: string): SpanRecord =>
    new SpanRecord(sink, 'GET', SpanKind.SERVER, { traceId: TRACE, spanId, traceFlags: 1 }, undefined, 1, { 'url.path': path, 'client.address': '10.0.0.1' }, shared);
  const first = make('0000000000000001', '/a');
  const second = make('0000000000000002', '/b');
  const client = new SpanRecord(sink, 'GET', SpanKind.CLIENT, { traceId: TRACE, spanId: '0000000000000003', traceFlags: 1 }, first.spanContext(), 1, {}, cache.client(alice, 'GET'));
  second.set('http.response.status_code', 200);
  // Another instance served it: its names change on this span only.
  second.set('tenement.instance', 'bob');
  assert.equal(second.shared, null);
  assert.equal(first.shared, shared);
  const spans = [first, second, client];
  const decoded = decodeOtlpProto(body(protobufEncoding, spans));
  assert.deepEqual(decoded, decodeOtlpProto(Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!)));
  assert.deepEqual(decodeOtlpJson(body(jsonEncoding, spans).toString()), decodeOtlpJson(new TextDecoder().decode(JsonTraceSerializer.serializeRequest(spans))));
  assert.deepEqual({ ...decoded[0]!.attributes }, {
    'http.request.method': 'GET',
    'url.scheme': 'http',
    'server.address': 'alice.notes.localhost',
    'tenement.service': 'notes',
    'tenement.instance': 'alice',
    'url.path': '/a',
    'client.address': '10.0.0.1',
  });
  assert.equal(decoded[1]!.attributes['tenement.instance'], 'bob');
  assert.equal(decoded[1]!.attributes['http.response.status_code'], 200);
  assert.deepEqual({ ...decoded[2]!.attributes }, { 'tenement.service': 'notes', 'tenement.instance': 'alice', 'http.request.method': 'GET', 'server.address': '127.0.0.1', 'server.port': 4100 });
  assert.throws(() => ((shared.attributes as Record<string, unknown>)['url.scheme'] = 'https'), TypeError, 'shared attributes are frozen');
});

test('the cache: one object per instance, method and host (or handle), a few variants each, forgotten with the instance, bounded over many instances', () => {
  const cache = new SharedAttributeCache();
  const handle = { address: { host: '127.0.0.1', port: 4100 } };
  const alice = instance('notes', 'alice', handle);
  const get = cache.server(alice, 'GET', 'alice.notes.localhost');
  assert.ok(get instanceof SharedAttributes);
  assert.equal(cache.server(alice, 'GET', `alice.notes.${'localhost'}`), get, 'the same variant, whatever string object names it');
  assert.notEqual(cache.server(alice, 'POST', 'alice.notes.localhost'), get);
  assert.notEqual(cache.server(alice, 'GET', 'other.localhost'), get);
  assert.equal(cache.server(alice, 'GET', 'alice.notes.localhost'), get, 'kept beside two others');
  for (const method of ['PUT', 'DELETE', 'PATCH']) cache.server(alice, method, 'alice.notes.localhost');
  assert.notEqual(cache.server(alice, 'GET', 'alice.notes.localhost'), get, 'four variants at most: the oldest went');
  const client = cache.client(alice, 'GET');
  assert.equal(cache.client(alice, 'GET'), client);
  const restarted = instance('notes', 'alice', { address: { host: '127.0.0.1', port: 4200 } });
  assert.equal(cache.client(restarted, 'GET').attributes['server.port'], 4200, 'a new handle (a restart): its address');
  const wasm = instance('fn', 'w', { inProcess: () => undefined });
  assert.equal(cache.client(wasm, 'GET').attributes['tenement.tier'], 'process');
  assert.equal(cache.client(wasm, 'GET').attributes['server.address'], undefined);
  cache.forget(alice.key);
  assert.notEqual(cache.client(alice, 'GET'), client, 'forgotten with the instance');
  // Hostile names are map keys and compared values, never object properties.
  const proto = instance('__proto__', 'constructor', handle);
  const odd = cache.server(proto, '__proto__', '__proto__');
  assert.equal(odd.attributes['tenement.service'], '__proto__');
  assert.equal(cache.server(proto, '__proto__', '__proto__'), odd);
  const firstOfMany = cache.server(instance('many', '0', handle), 'GET', 'h');
  for (let i = 1; i <= 5000; i++) cache.server(instance('many', String(i), handle), 'GET', 'h');
  assert.notEqual(cache.server(instance('many', '0', handle), 'GET', 'h'), firstOfMany, 'past 4,096 instances the cache starts over');
});
