// plugins/otel/otlp-proto.ts: the OTLP protobuf Tenement writes for its spans (the default export encoding),
// read back by the receiver the e2e tests and the benchmark use (test/otlp-proto.ts). The receiver's decoder is
// first checked against the SDK's own protobuf serializer, then Tenement's bytes against the SDK's, span by span.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, type Attributes, type SpanContext } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Bytes } from '../../plugins/otel/bytes.ts';
import { MAX_STRING } from '../../plugins/otel/otlp-json.ts';
import { protobufEncoding } from '../../plugins/otel/otlp-proto.ts';
import { at, SpanRecord } from '../../plugins/otel/records.ts';
import { countOtlpProto, decodeOtlpProto } from '../otlp-proto.ts';
import { decodeOtlpJson } from '../otlp-receiver.ts';
import { TRACE, record, resource, scope, sdkSpans, sink } from '../otel-spans.ts';

/** The request Tenement sends for `spans`: each written as it would end, then the request around them. */
function ours(spans: readonly ReadableSpan[]): Buffer {
  const body = new Bytes(64);
  spans.forEach((span, i) => protobufEncoding.span(body, span, i));
  const out = new Bytes(64);
  protobufEncoding.request(resource, scope, body.view(), out);
  return Buffer.from(out.view());
}

const sdkProto = (spans: ReadableSpan[]): Buffer => Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!);
const sdkJson = (spans: ReadableSpan[]): string => new TextDecoder().decode(JsonTraceSerializer.serializeRequest(spans));

function mixed(): ReadableSpan[] {
  const server = record('GET', SpanKind.SERVER, '00f067aa0ba902b7', { traceId: TRACE, spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true }, 10, 20.000001, {
    'url.path': '/a',
    'client.address': '127.0.0.1',
  });
  server.set('http.response.status_code', 503);
  server.fail('status 503');
  const client = record('GET', SpanKind.CLIENT, '1111111111111111', server.spanContext(), 11, 19, { 'server.port': 4000, ratio: 0.25, ok: true, neg: -7 });
  const fromSdk = sdkSpans((tracer) => {
    const span = tracer.startSpan('tenement.spawn', { kind: SpanKind.INTERNAL, startTime: at(12), attributes: { 'tenement.tier': 'process', list: ['a', 'b'], nums: [1, 2.5] } }, ROOT_CONTEXT);
    span.addEvent('tenement.spawned', { pid: 42 }, at(13));
    span.addLink({ context: { traceId: TRACE, spanId: '2222222222222222', traceFlags: 1 }, attributes: { why: 'link' } });
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'exited with code 3' });
    span.end(at(14));
    const health = tracer.startSpan('tenement.health', { startTime: at(15), attributes: { 'tenement.health.ok': false } }, ROOT_CONTEXT);
    health.end(at(16));
  });
  return [server, client, ...fromSdk];
}

test("the receiver's protobuf decoder reads the SDK's protobuf exactly as its JSON decoder reads the SDK's JSON", () => {
  const spans = mixed();
  const fromProto = decodeOtlpProto(sdkProto(spans));
  assert.equal(fromProto.length, 4);
  assert.deepEqual(fromProto, decodeOtlpJson(sdkJson(spans)));
});

test("Tenement's protobuf decodes as the SDK's protobuf of the same spans: ids, parents, times to the nanosecond, attributes, events, status", () => {
  const spans = mixed();
  const bytes = ours(spans);
  const decoded = decodeOtlpProto(bytes);
  assert.deepEqual(decoded, decodeOtlpProto(sdkProto(spans)));
  const [server, client, spawn] = decoded;
  const [s, ns] = at(10);
  assert.equal(server!.startNs, BigInt(s) * 1_000_000_000n + BigInt(ns));
  assert.equal(server!.endNs - server!.startNs, 10_000_001n, 'the duration, to the nanosecond');
  assert.equal(server!.parentSpanId, 'b7ad6b7169203331');
  assert.deepEqual(server!.status, { code: 2, message: 'status 503' });
  assert.equal(server!.attributes['http.response.status_code'], 503);
  assert.equal(server!.resource['service.name'], 'tenement');
  assert.equal(client!.parentSpanId, '00f067aa0ba902b7');
  assert.equal(client!.attributes.neg, -7, 'a negative int64 (ten bytes of two\'s complement)');
  assert.equal(client!.attributes.ratio, 0.25);
  assert.deepEqual(spawn!.events, ['tenement.spawned']);
  assert.ok(bytes.length < Buffer.byteLength(sdkJson(spans)) * 0.6, `smaller than the JSON: ${bytes.length} bytes`);
  // Wrapped twice (two batches sent as one body) it still reads: nothing depends on being alone in the body.
  assert.equal(decodeOtlpProto(Buffer.concat([bytes, bytes])).length, 8);
});

test('every length is right: each strict prefix of a body fails to decode or decodes fewer spans, with either decoder', () => {
  const bytes = ours(mixed());
  assert.equal(countOtlpProto(bytes), 4);
  assert.equal(countOtlpProto(sdkProto(mixed())), 4);
  for (let cut = 0; cut < bytes.length; cut++) {
    for (const decode of [(b: Buffer) => decodeOtlpProto(b).length, countOtlpProto]) {
      let spans = -1;
      try {
        spans = decode(bytes.subarray(0, cut));
      } catch {
        continue;
      }
      assert.ok(spans < 4, `a prefix of ${cut} bytes decoded ${spans} spans`);
    }
  }
});

test("the benchmark's counting decoder refuses what a collector refuses: a string that is not UTF-8, an id of the wrong size", () => {
  const span = record('GET', SpanKind.SERVER, '0000000000000001', undefined, 1, 2, { 'url.path': '/caf\u00e9' });
  const bytes = ours([span]);
  assert.equal(countOtlpProto(bytes), 1, 'a two-byte character is UTF-8');
  const bad = Buffer.from(bytes);
  bad[bad.indexOf(Buffer.from('/caf')) + 4] = 0xff;
  assert.throws(() => countOtlpProto(bad), /UTF-8/);
  // The span id's length byte follows its tag (0x12) right after the 16-byte trace id.
  const spanStart = bytes.indexOf(Buffer.from([0x0a, 16]), 0);
  const wrongId = Buffer.from(bytes);
  assert.equal(wrongId[spanStart + 18], 0x12);
  wrongId[spanStart + 19] = 7;
  assert.throws(() => countOtlpProto(wrongId), /an id of 7 bytes/);
});

test('hostile values: huge strings cut to MAX_STRING characters, lone surrogates written as U+FFFD, numbers past 2^53 as doubles, long lists bounded', () => {
  const huge = 'x'.repeat(1_000_000);
  const hostile = ['say "hi"\\n', 'line\nbreak\u0000', 'emoji 🦀 and 中文', 'lone high \ud800 end', 'reversed \udc00\ud800', '\ud83e', ''];
  const attributes: Attributes = { huge, pairAtCut: `${'a'.repeat(MAX_STRING - 1)}🦀tail`, nan: Number.NaN, inf: Number.POSITIVE_INFINITY, big: 2 ** 60, max: Number.MAX_SAFE_INTEGER, min: Number.MIN_SAFE_INTEGER };
  hostile.forEach((value, i) => {
    attributes[`k${i}`] = value;
  });
  for (let i = 0; i < 60; i++) attributes[`many${i}`] = huge;
  attributes.list = Array.from({ length: 100_000 }, () => 'v');
  Object.defineProperty(attributes, '__proto__', { value: 'not a prototype', enumerable: true });
  const span = record(huge, SpanKind.SERVER, '0000000000000001', undefined, 1, 2, attributes);
  span.fail(`message \ud800${huge}`);
  const bytes = ours([span]);
  assert.ok(bytes.length < 64 * (MAX_STRING + 64) + 1024 * 4, `body bounded: ${bytes.length} bytes for 62 values of 1 MB`);
  const [decoded] = decodeOtlpProto(bytes);
  assert.equal(decoded!.name.length, MAX_STRING);
  assert.equal(decoded!.status.message.length, MAX_STRING);
  assert.ok(decoded!.status.message.startsWith('message \ufffd'));
  assert.equal(String(decoded!.attributes.huge).length, MAX_STRING);
  assert.equal(decoded!.attributes.pairAtCut, 'a'.repeat(MAX_STRING - 1), 'the pair is left out whole, not split');
  hostile.forEach((value, i) => assert.equal(decoded!.attributes[`k${i}`], Buffer.from(value, 'utf8').toString('utf8'), `value ${i}`));
  assert.ok(Number.isNaN(decoded!.attributes.nan));
  assert.equal(decoded!.attributes.inf, Number.POSITIVE_INFINITY);
  assert.equal(decoded!.attributes.big, 2 ** 60);
  assert.equal(decoded!.attributes.max, Number.MAX_SAFE_INTEGER);
  assert.equal(decoded!.attributes.min, Number.MIN_SAFE_INTEGER);
  assert.equal(Object.hasOwn(decoded!.attributes, '__proto__'), true, 'an attribute named __proto__ is an attribute');
  assert.equal(decoded!.attributes.__proto__, 'not a prototype');
});

test('trace state and remote parents are written; the response decoder reads a partial success and shrugs at garbage', () => {
  const context: SpanContext = { traceId: TRACE, spanId: '0000000000000001', traceFlags: 1, traceState: new TraceState('vendor=a,other=b') };
  const span = new SpanRecord(sink, 'GET', SpanKind.SERVER, context, { traceId: TRACE, spanId: '0000000000000009', traceFlags: 1, isRemote: true }, 1, {});
  span.end = 2;
  assert.deepEqual(decodeOtlpProto(ours([span])), decodeOtlpProto(sdkProto([span])));
  assert.ok(ours([span]).includes(Buffer.from('vendor=a,other=b')));
  // Ids no generator or propagator makes (upper case, wrong length) cannot corrupt the message: zero bytes.
  const odd = new SpanRecord(sink, 'GET', SpanKind.SERVER, { traceId: TRACE.toUpperCase(), spanId: '123', traceFlags: 1 }, undefined, 1, {});
  const wide = new SpanRecord(sink, 'GET', SpanKind.SERVER, { traceId: TRACE, spanId: '\u00b0'.repeat(16), traceFlags: 1 }, undefined, 1, {});
  const [decodedOdd, decodedWide] = decodeOtlpProto(ours([odd, wide, span]));
  assert.equal(decodedWide!.spanId, '0'.repeat(16), 'not read as 0x30 once its high bits are cut');
  assert.equal(decodedOdd!.traceId, '0'.repeat(32));
  assert.equal(decodedOdd!.spanId, '0'.repeat(16));
  // partial_success { rejected_spans: 3, error_message: "full" }
  const partial = Buffer.from([0x0a, 0x08, 0x08, 0x03, 0x12, 0x04, ...Buffer.from('full')]);
  assert.deepEqual(protobufEncoding.decodeResponse(partial), { partialSuccess: { rejectedSpans: 3, errorMessage: 'full' } });
  assert.deepEqual(protobufEncoding.decodeResponse(new Uint8Array(0)), {});
  assert.deepEqual(protobufEncoding.decodeResponse(Buffer.from('{"partialSuccess":{}}')), {}, 'JSON where protobuf was asked for: accepted, nothing read');
  assert.deepEqual(protobufEncoding.decodeResponse(Buffer.from([0x0a, 0xff])), {}, 'truncated');
});

test('schema URLs of the resource and the scope are written where the schema puts them', () => {
  const withSchema = resourceFromAttributes({ 'service.name': 's' }, { schemaUrl: 'https://example.com/r' });
  const span = record('GET', SpanKind.SERVER, '0000000000000001', undefined, 1, 2, {});
  const body = new Bytes(8);
  protobufEncoding.span(body, span, 0);
  const out = new Bytes(8);
  protobufEncoding.request(withSchema, { name: 'x', version: '1', schemaUrl: 'https://example.com/s' }, body.view(), out);
  const bytes = Buffer.from(out.view());
  assert.equal(countOtlpProto(bytes), 1);
  const [decoded] = decodeOtlpProto(bytes);
  assert.equal(decoded!.resource['service.name'], 's');
  assert.equal(decoded!.spanId, '0000000000000001');
  // ResourceSpans.schema_url (3) and ScopeSpans.schema_url (3): tag 0x1a, then the URL.
  assert.ok(bytes.includes(Buffer.concat([Buffer.from([0x1a, 21]), Buffer.from('https://example.com/r')])));
  assert.ok(bytes.includes(Buffer.concat([Buffer.from([0x1a, 21]), Buffer.from('https://example.com/s')])));
});

test('cached attribute values: a value repeated, changed, alternating, past the cache bound, or equal as text but not as type, is written as the SDK writes it', () => {
  // The writer remembers each name's last value and up to 64 earlier ones: every path through that cache,
  // span after span, against the SDK's serializer of the same spans.
  const values: Array<string | number> = ['GET', 'GET', 'POST', 'GET', 'POST', '200', 200, 200, '200', 0, -0, 7, 'x'.repeat(300), 'x'.repeat(300)];
  for (let i = 0; i < 80; i++) values.push(`/path/${i}`, `/path/${i % 3}`);
  const spans = values.map((value, i) =>
    record('GET', SpanKind.SERVER, (i + 1).toString(16).padStart(16, '0'), undefined, i, i + 1, { 'cache.test': value, 'cache.other': i % 2 === 0 ? 'even' : 'odd', [`cache.key${i}`]: value }),
  );
  const decoded = decodeOtlpProto(ours(spans));
  assert.deepEqual(decoded, decodeOtlpProto(sdkProto(spans)));
  decoded.forEach((span, i) => assert.equal(span.attributes['cache.test'], typeof values[i] === 'number' ? Number(values[i]) + 0 : values[i], `span ${i}`));
});

test('a request time (perfTime: origin words plus the reading) is the same fixed64 as its at() HrTime, to the nanosecond', async () => {
  const { hrTime, perfTime } = await import('../../plugins/otel/protobuf-wire.ts');
  const { ORIGIN_NANOS } = await import('../../plugins/otel/records.ts');
  const readings = [0, 1e-6, 4e-7, 5e-7, 6e-7, 0.001, 12.3456789, 999.9999995, 1000, 86_400_000.123456, 9e9, performance.now()];
  // Readings whose nanoseconds carry into the next second, and into the origin's high word.
  for (let k = 0; k < 4; k++) readings.push((1e9 * (k + 1) - ORIGIN_NANOS) / 1e6, (1e9 * (k + 1) - ORIGIN_NANOS - 1) / 1e6);
  for (let k = 1; k < 64; k++) readings.push(k * 4294.967296, k * 4294.967296 - 1e-6);
  // Random ones, over milliseconds to months.
  let seed = 7;
  for (let i = 0; i < 5_000; i++) {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    readings.push((seed / 2147483648) * 10 ** (i % 11));
  }
  for (const perf of readings) {
    const ours = new Bytes(8);
    const expected = new Bytes(8);
    perfTime(ours, perf);
    hrTime(expected, at(perf));
    assert.deepEqual(ours.view(), expected.view(), `reading ${perf}`);
  }
  // Negative (never a performance.now() reading) and past 2^53 ns: still the same as at().
  for (const perf of [-5, -0.5, 2 ** 53 / 1e6 + 1]) {
    const ours = new Bytes(8);
    const expected = new Bytes(8);
    perfTime(ours, perf);
    hrTime(expected, at(perf));
    assert.deepEqual(ours.view(), expected.view(), `reading ${perf}`);
  }
});
