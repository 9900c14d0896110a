// plugins/otel/otlp-json.ts: the OTLP JSON body Tenement writes for its spans, read back by the receiver the
// e2e tests and the benchmark use (test/otlp-receiver.ts), and compared with the SDK's own serializer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, type Attributes, type SpanContext } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { encodeTraceRequest, MAX_ARRAY, MAX_STRING } from '../../plugins/otel/otlp-json.ts';
import { at, SpanRecord } from '../../plugins/otel/records.ts';
import { decodeOtlpJson } from '../otlp-receiver.ts';
import { TRACE, record, resource, sdkSpans, sink } from '../otel-spans.ts';

const text = (spans: readonly ReadableSpan[]): string => {
  const bytes = encodeTraceRequest(spans).bytes;
  // Valid UTF-8, or this throws: nothing in the body needed replacing.
  return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
};

const sdkText = (spans: ReadableSpan[]): string => new TextDecoder().decode(JsonTraceSerializer.serializeRequest(spans));

test('a request record: the exact OTLP JSON, ids as hex, times as decimal nanoseconds on the same clock as at()', () => {
  const server = record('GET', SpanKind.SERVER, '00f067aa0ba902b7', undefined, 1000.5, 1001.25, { 'http.request.method': 'GET', 'url.path': '/notes', 'server.port': 8080 });
  server.set('http.response.status_code', 503);
  server.fail('status 503');
  const [s, ns] = at(1000.5);
  const [es, ens] = at(1001.25);
  const start = `${s}${String(ns).padStart(9, '0')}`;
  const end = `${es}${String(ens).padStart(9, '0')}`;
  assert.equal(BigInt(end) - BigInt(start), 750_000n, 'the duration, to the nanosecond');
  assert.equal(
    text([server]),
    '{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"tenement"}},{"key":"service.version","value":{"stringValue":"1.2.3"}}]},' +
      '"scopeSpans":[{"scope":{"name":"tenement","version":"1.2.3"},"spans":[' +
      `{"traceId":"${TRACE}","spanId":"00f067aa0ba902b7","flags":257,"name":"GET","kind":2,"startTimeUnixNano":"${start}","endTimeUnixNano":"${end}",` +
      '"attributes":[{"key":"http.request.method","value":{"stringValue":"GET"}},{"key":"url.path","value":{"stringValue":"/notes"}},' +
      '{"key":"server.port","value":{"intValue":"8080"}},{"key":"http.response.status_code","value":{"intValue":"503"}}],' +
      '"status":{"message":"status 503","code":2}}]}]}]}',
  );
});

test('decoded, records and SDK spans read exactly as the SDK serializer\'s body of the same spans', () => {
  const server = record('GET', SpanKind.SERVER, '00f067aa0ba902b7', { traceId: TRACE, spanId: 'b7ad6b7169203331', traceFlags: 1, isRemote: true }, 10, 20, {
    'url.path': '/a',
    'client.address': '127.0.0.1',
  });
  const client = record('GET', SpanKind.CLIENT, '1111111111111111', server.spanContext(), 11, 19, { 'server.port': 4000, ratio: 0.25, ok: true });
  const fromSdk = sdkSpans((tracer) => {
    const span = tracer.startSpan('tenement.spawn', { kind: SpanKind.INTERNAL, startTime: at(12), attributes: { 'tenement.tier': 'process', list: ['a', 'b'], nums: [1, 2.5] } }, ROOT_CONTEXT);
    span.addEvent('tenement.spawned', { pid: 42 }, at(13));
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'exited with code 3' });
    span.end(at(14));
    const health = tracer.startSpan('tenement.health', { startTime: at(15), attributes: { 'tenement.health.ok': false } }, ROOT_CONTEXT);
    health.end(at(16));
  });
  const all: ReadableSpan[] = [server, client, ...fromSdk];
  const ours = decodeOtlpJson(text(all));
  assert.deepEqual(ours, decodeOtlpJson(sdkText(all)));
  assert.equal(ours.length, 4);
  assert.equal(ours[1]!.parentSpanId, '00f067aa0ba902b7');
  assert.deepEqual(ours[2]!.events, ['tenement.spawned']);
  // What the receiver does not flatten: the list values and the event's own attributes, read from the raw JSON.
  const raw = JSON.parse(text(all)) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<Record<string, unknown>> }> }> };
  const spawn = raw.resourceSpans[0]!.scopeSpans[0]!.spans[2]!;
  assert.deepEqual(spawn.events, [{ timeUnixNano: String(BigInt(at(13)[0]) * 1_000_000_000n + BigInt(at(13)[1])), name: 'tenement.spawned', attributes: [{ key: 'pid', value: { intValue: '42' } }] }]);
  assert.deepEqual((spawn.attributes as Array<{ key: string; value: unknown }>).find((a) => a.key === 'nums')?.value, {
    arrayValue: { values: [{ intValue: '1' }, { doubleValue: 2.5 }] },
  });
  assert.equal(raw.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.flags, 0x301, 'sampled, with a remote parent');
});

test('spans of different resources and scopes are grouped as the SDK groups them', () => {
  const other = resourceFromAttributes({ 'service.name': 'other' });
  const a = record('GET', SpanKind.SERVER, '0000000000000001', undefined, 1, 2, {});
  const b = new SpanRecord({ resource: other, scope: { name: 'x' }, onEnd() {} }, 'b', SpanKind.INTERNAL, { traceId: TRACE, spanId: '0000000000000002', traceFlags: 1 }, undefined, 1, {});
  b.end = 3;
  const c = new SpanRecord({ resource, scope: { name: 'y', version: '2' }, onEnd() {} }, 'c', SpanKind.INTERNAL, { traceId: TRACE, spanId: '0000000000000003', traceFlags: 1 }, undefined, 1, {});
  c.end = 3;
  const d = record('GET', SpanKind.CLIENT, '0000000000000004', undefined, 1, 2, {});
  const spans = [a, b, c, d];
  const raw = JSON.parse(text(spans)) as { resourceSpans: Array<{ resource: unknown; scopeSpans: Array<{ scope: { name: string }; spans: Array<{ spanId: string }> }> }> };
  assert.deepEqual(
    raw.resourceSpans.map((r) => r.scopeSpans.map((s) => [s.scope.name, s.spans.map((x) => x.spanId.slice(-1))])),
    [
      [
        ['tenement', ['1', '4']],
        ['y', ['3']],
      ],
      [['x', ['2']]],
    ],
  );
  assert.deepEqual(decodeOtlpJson(text(spans)), decodeOtlpJson(sdkText(spans)));
});

test('hostile strings: quotes, escapes, control characters, line separators, emoji and lone surrogates come back as they were sent', () => {
  const hostile = [
    'say "hi"\\n',
    'line\nbreak\r\ttab\u0000nul\u001f\u007f',
    'sep\u2028\u2029',
    'emoji 🦀 and 中文',
    'lone high \ud800 end',
    'lone low \udc00 end',
    'reversed \udc00\ud800',
    '\ud83e', // a high surrogate at the very end
    '</script><!--',
    '',
  ];
  const attributes: Attributes = {};
  hostile.forEach((value, i) => {
    attributes[`k${i}`] = value;
    attributes[`key "${i}"\n\ud800`] = i;
  });
  const span = record('na"me\n\ud800', SpanKind.SERVER, '0000000000000001', undefined, 1, 2, attributes);
  span.fail('message "quoted"\n\udfff');
  const body = text([span]);
  assert.ok(!/[\u0000-\u001f]/.test(body), 'no raw control character in the body');
  const [decoded] = decodeOtlpJson(body);
  assert.equal(decoded!.name, 'na"me\n\ud800');
  assert.equal(decoded!.status.message, 'message "quoted"\n\udfff');
  hostile.forEach((value, i) => {
    assert.equal(decoded!.attributes[`k${i}`], value, `value ${i}`);
    assert.equal(decoded!.attributes[`key "${i}"\n\ud800`], i, `key ${i}`);
  });
  assert.deepEqual(decodeOtlpJson(body), decodeOtlpJson(sdkText([span])), 'as the SDK writes them');
});

test('huge values are cut to MAX_STRING characters, never inside a surrogate pair; numbers JSON cannot spell are written as proto3 JSON does', () => {
  const huge = 'x'.repeat(1_000_000);
  const pairAtCut = `${'a'.repeat(MAX_STRING - 1)}🦀tail`;
  const attributes: Attributes = { huge, pairAtCut, nan: Number.NaN, inf: Number.POSITIVE_INFINITY, ninf: Number.NEGATIVE_INFINITY, big: 2 ** 60, neg: -7, bytes: undefined };
  for (let i = 0; i < 63; i++) attributes[`many${i}`] = huge;
  const span = record(huge, SpanKind.SERVER, '0000000000000001', undefined, 1, 2, attributes);
  span.fail(huge);
  const bytes = encodeTraceRequest([span]).bytes;
  // 65 attribute values, the name and the status message: 67 strings of up to MAX_STRING characters.
  assert.ok(bytes.length < 67 * (MAX_STRING + 64) + 2048, `body bounded: ${bytes.length} bytes for 67 values of 1 MB`);
  const [decoded] = decodeOtlpJson(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  assert.equal(decoded!.name.length, MAX_STRING);
  assert.equal(decoded!.status.message.length, MAX_STRING);
  assert.equal(String(decoded!.attributes.huge).length, MAX_STRING);
  assert.equal(decoded!.attributes.pairAtCut, 'a'.repeat(MAX_STRING - 1), 'the pair is left out whole, not split');
  assert.ok(!('bytes' in decoded!.attributes), 'an undefined value is left out');
  const raw = bytes.toString('utf8');
  assert.match(raw, /"nan","value":\{"doubleValue":"NaN"\}/);
  assert.match(raw, /"inf","value":\{"doubleValue":"Infinity"\}/);
  assert.match(raw, /"ninf","value":\{"doubleValue":"-Infinity"\}/);
  assert.match(raw, /"big","value":\{"doubleValue":1152921504606847000\}/, 'past 2^53 an integer is no longer exact: a double');
  assert.match(raw, /"neg","value":\{"intValue":"-7"\}/);
  const list = record('GET', SpanKind.SERVER, '0000000000000002', undefined, 1, 2, { list: Array.from({ length: 100_000 }, () => 'v') });
  const listJson = JSON.parse(text([list])) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<{ attributes: Array<{ value: { arrayValue: { values: unknown[] } } }> }> }> }> };
  assert.equal(listJson.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.attributes[0]!.value.arrayValue.values.length, MAX_ARRAY, 'a long list is cut too');
});

test('a buffer given back is written into again; a batch bigger than it gets a bigger one', () => {
  const spans = Array.from({ length: 4 }, (_, i) => record('GET', SpanKind.SERVER, `000000000000000${i + 1}`, undefined, 1, 2, { 'url.path': '/' }));
  const first = encodeTraceRequest(spans);
  const firstText = first.bytes.toString('utf8');
  const again = encodeTraceRequest(spans, first.buffer);
  assert.equal(again.buffer, first.buffer, 'the same buffer, reused');
  assert.equal(again.bytes.toString('utf8'), firstText);
  const many = Array.from({ length: 40 }, () => spans).flat();
  const grown = encodeTraceRequest(many, Buffer.alloc(64));
  assert.ok(grown.buffer.length > 64);
  assert.equal(decodeOtlpJson(grown.bytes.toString('utf8')).length, 160);
});

test('trace state is written escaped, and an empty batch is an empty request', () => {
  const context: SpanContext = { traceId: TRACE, spanId: '0000000000000001', traceFlags: 1, traceState: new TraceState('vendor=a,other=b') };
  const span = new SpanRecord(sink, 'GET', SpanKind.SERVER, context, undefined, 1, {});
  span.end = 2;
  const raw = JSON.parse(text([span])) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<{ traceState?: string }> }> }> };
  assert.equal(raw.resourceSpans[0]!.scopeSpans[0]!.spans[0]!.traceState, 'vendor=a,other=b');
  assert.equal(text([]), '{"resourceSpans":[]}');
});

test('the batch path (each span written as it ends, the request put around them when sent) writes the same body', async () => {
  const { Bytes } = await import('../../plugins/otel/bytes.ts');
  const { jsonEncoding } = await import('../../plugins/otel/otlp-json.ts');
  const spans = [
    record('GET', SpanKind.SERVER, '0000000000000001', undefined, 1, 2, { 'url.path': '/a "b"', n: 7 }),
    record('GET', SpanKind.CLIENT, '0000000000000002', { traceId: TRACE, spanId: '0000000000000001', traceFlags: 1 }, 1.5, 1.75, { ok: true }),
  ];
  const body = new Bytes(8);
  spans.forEach((span, i) => jsonEncoding.span(body, span, i));
  const out = new Bytes(8);
  jsonEncoding.request(resource, sink.scope, body.view(), out);
  assert.equal(out.view().toString('utf8'), text(spans));
  const schema = resourceFromAttributes({ a: 1 }, { schemaUrl: 'https://example.com/s' });
  const withSchema = new Bytes(8);
  jsonEncoding.request(schema, { name: 's', schemaUrl: 'https://example.com/scope' }, body.view(), withSchema);
  const raw = JSON.parse(withSchema.view().toString('utf8')) as { resourceSpans: Array<{ schemaUrl: string; scopeSpans: Array<{ schemaUrl: string; spans: unknown[] }> }> };
  assert.equal(raw.resourceSpans[0]!.schemaUrl, 'https://example.com/s');
  assert.equal(raw.resourceSpans[0]!.scopeSpans[0]!.schemaUrl, 'https://example.com/scope');
  assert.equal(raw.resourceSpans[0]!.scopeSpans[0]!.spans.length, 2);
});
