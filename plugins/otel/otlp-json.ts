/**
 * OTLP/JSON for an export batch (an ExportTraceServiceRequest: resourceSpans / scopeSpans / spans), written as
 * one string straight from the spans. The SDK's JsonTraceSerializer built an object tree per span (with a
 * BigInt per timestamp) and then JSON.stringify'd it: about 5 µs per span on the proxy's main thread, most of
 * tracing's cost per request. Request records (records.ts) are read field by field, their ids kept as the hex
 * strings they already are and their times converted from performance.now() readings only here; any other
 * ReadableSpan (the SDK's own: wake, spawn, health, restart) goes through the same writer.
 *
 * The shape is the OTLP JSON encoding (opentelemetry-proto, "JSON Protobuf Encoding"): ids in lower-case hex,
 * 64-bit integers (times, intValue) as decimal strings, enums as numbers, fields left out when they hold their
 * default (an empty list, a zero count, an unset status), as any collector reads them.
 *
 * Every string is escaped by JSON.stringify (quotes, control characters, and lone surrogates as \udXXX, so
 * the UTF-8 encoding of the body never has to replace anything) and cut to MAX_STRING characters, never
 * inside a surrogate pair: a value the spans did not bound (a plugin's attribute, an exception message)
 * cannot make one export body huge.
 */
import type { Attributes, AttributeValue, HrTime, Link, SpanContext, SpanStatus } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';
import type { SpanEncoding, TraceResponse } from './encoding.ts';
import { SpanRecord, unixNanos } from './records.ts';

/** Longest string written (attribute values and keys, names, status messages, trace state). */
export const MAX_STRING = 4096;
/** Most members of an array attribute written. */
export const MAX_ARRAY = 1024;

/** OTLP span flags: the low byte is the W3C trace flags; 0x100 says whether the parent was remote is known, 0x200 that it was. */
const HAS_IS_REMOTE = 0x100;
const IS_REMOTE = 0x200;

/** Printable ASCII other than `"` and `\\`: written between quotes as it is (most values are). */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** A string as a JSON string literal, cut to MAX_STRING characters (one fewer rather than half a surrogate pair). */
export function jsonString(value: string): string {
  if (value.length > MAX_STRING) {
    const last = value.charCodeAt(MAX_STRING - 1);
    value = value.slice(0, last >= 0xd800 && last <= 0xdbff ? MAX_STRING - 1 : MAX_STRING);
  }
  return PLAIN.test(value) ? `"${value}"` : JSON.stringify(value);
}

/**
 * Per attribute name, its `{"key":…,"value":` prefix and the whole JSON of the values it took recently
 * (`{"key":"http.request.method","value":{"stringValue":"GET"}}`): most values of a request span repeat from
 * request to request (method, scheme, host, addresses, service, instance), and a value written once is a
 * lookup afterwards, and one flat piece of the span's string instead of several. Bounded: at most
 * MAX_KEYS names and MAX_VALUES short string values per name; past that, values are written each time.
 */
interface KeyEntry {
  prefix: string;
  values: Map<string, string>;
}

const KEYS = new Map<string, KeyEntry>();
const MAX_KEYS = 64;
const MAX_VALUES = 64;
const MAX_CACHED_VALUE = 256;

function keyEntry(key: string): KeyEntry {
  let entry = KEYS.get(key);
  if (entry === undefined) {
    entry = { prefix: `{"key":${jsonString(key)},"value":`, values: new Map() };
    if (KEYS.size < MAX_KEYS) KEYS.set(key, entry);
  }
  return entry;
}

/** One attribute's KeyValue JSON, or '' when its value is none an attribute can hold. */
function keyValue(key: string, value: unknown): string {
  const entry = keyEntry(key);
  if (typeof value === 'string' && value.length <= MAX_CACHED_VALUE) {
    let json = entry.values.get(value);
    if (json === undefined) {
      json = `${entry.prefix}{"stringValue":${jsonString(value)}}}`;
      if (entry.values.size < MAX_VALUES) entry.values.set(value, json);
    }
    return json;
  }
  const written = anyValue(value);
  return written === '' ? '' : `${entry.prefix}${written}}`;
}

function hrNanos(time: HrTime): string {
  const seconds = Math.trunc(time[0]);
  const nanos = Math.trunc(time[1]);
  if (seconds <= 0) return String(Math.max(0, nanos));
  return `${seconds}${String(1e9 + nanos).slice(1)}`;
}

function doubleValue(value: number): string {
  // proto3 JSON spells the non-finite doubles as strings (JSON has no literal for them).
  if (Number.isNaN(value)) return '{"doubleValue":"NaN"}';
  if (!Number.isFinite(value)) return value > 0 ? '{"doubleValue":"Infinity"}' : '{"doubleValue":"-Infinity"}';
  return `{"doubleValue":${value}}`;
}

/** An AnyValue, or '' for what an attribute cannot hold (null, undefined, objects): it is then left out. */
function anyValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return `{"stringValue":${jsonString(value)}}`;
    case 'number':
      return Number.isSafeInteger(value) ? `{"intValue":"${value}"}` : doubleValue(value);
    case 'boolean':
      return value ? '{"boolValue":true}' : '{"boolValue":false}';
    case 'object': {
      if (value instanceof Uint8Array) return `{"bytesValue":"${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64')}"}`;
      if (!Array.isArray(value)) return '';
      let out = '{"arrayValue":{"values":[';
      // Bounded like strings: no span of Tenement's sets a long list, but nothing else stops one.
      const members = Math.min(value.length, MAX_ARRAY);
      for (let i = 0; i < members; i++) {
        // A hole or null in a homogeneous attribute array stays a member (an empty AnyValue), as the SDK sends it.
        out += (i > 0 ? ',' : '') + (anyValue(value[i]) || '{}');
      }
      return `${out}]}}`;
    }
    default:
      return '';
  }
}

/** `,"attributes":[…]` for a non-empty set, else ''. */
function attributes(attrs: Attributes | undefined): string {
  if (attrs === undefined) return '';
  let out = '';
  for (const key in attrs) {
    if (!Object.hasOwn(attrs, key)) continue;
    const json = keyValue(key, attrs[key] as AttributeValue | undefined);
    if (json !== '') out = out === '' ? json : `${out},${json}`;
  }
  return out === '' ? '' : `,"attributes":[${out}]`;
}

/** `,"field":count` when count is not 0. */
function count(field: string, value: number | undefined): string {
  return value ? `,"${field}":${value}` : '';
}

function traceState(context: SpanContext): string {
  const state = context.traceState?.serialize();
  return state ? `,"traceState":${jsonString(state)}` : '';
}

function flags(traceFlags: number, isRemote: boolean | undefined): string {
  return `,"flags":${(traceFlags & 0xff) | HAS_IS_REMOTE | (isRemote ? IS_REMOTE : 0)}`;
}

function events(list: readonly TimedEvent[]): string {
  if (list.length === 0) return '';
  let out = '';
  for (const event of list) {
    out +=
      `${out === '' ? '' : ','}{"timeUnixNano":"${hrNanos(event.time)}","name":${jsonString(event.name)}` +
      `${attributes(event.attributes)}${count('droppedAttributesCount', event.droppedAttributesCount)}}`;
  }
  return `,"events":[${out}]`;
}

function links(list: readonly Link[]): string {
  if (list.length === 0) return '';
  let out = '';
  for (const link of list) {
    const context = link.context;
    out +=
      `${out === '' ? '' : ','}{"traceId":"${context.traceId}","spanId":"${context.spanId}"${traceState(context)}` +
      `${attributes(link.attributes)}${count('droppedAttributesCount', link.droppedAttributesCount)}${flags(context.traceFlags, context.isRemote)}}`;
  }
  return `,"links":[${out}]`;
}

function statusJson(status: SpanStatus): string {
  return status.code === 0 && !status.message ? '' : `,"status":{${status.message ? `"message":${jsonString(status.message)},` : ''}"code":${status.code}}`;
}

/**
 * One span. Ids are written as they are: the SDK's generator and records.ts make lower-case hex, and the ids
 * of a caller's context come from the W3C propagator, which takes only lower-case hex of the right length.
 */
export function spanJson(s: ReadableSpan): string {
  const context = s.spanContext();
  const parent = s.parentSpanContext;
  // The API's kinds count from INTERNAL = 0; OTLP's from UNSPECIFIED = 0.
  const head =
    `{"traceId":"${context.traceId}","spanId":"${context.spanId}"${context.traceState === undefined ? '' : traceState(context)}` +
    `${parent?.spanId ? `,"parentSpanId":"${parent.spanId}"` : ''}${flags(context.traceFlags, parent?.isRemote)},"name":${jsonString(s.name)},"kind":${s.kind + 1}`;
  if (s instanceof SpanRecord) {
    // A request record has no events, links or dropped counts.
    const start = unixNanos(s.start);
    return `${head},"startTimeUnixNano":"${start}","endTimeUnixNano":"${s.end < 0 ? start : unixNanos(s.end)}"${attributes(s.attributes)}${statusJson(s.status)}}`;
  }
  return (
    `${head},"startTimeUnixNano":"${hrNanos(s.startTime)}","endTimeUnixNano":"${hrNanos(s.endTime)}"` +
    attributes(s.attributes) +
    count('droppedAttributesCount', s.droppedAttributesCount) +
    events(s.events) +
    count('droppedEventsCount', s.droppedEventsCount) +
    links(s.links) +
    count('droppedLinksCount', s.droppedLinksCount) +
    statusJson(s.status) +
    '}'
  );
}

/** A resource's `"resource":{…}`, written once per Resource object. */
const RESOURCES = new WeakMap<Resource, string>();

function resourceJson(resource: Resource): string {
  let json = RESOURCES.get(resource);
  if (json === undefined) {
    // Attributes still pending (an async detector) are left out, as the SDK's serializer leaves them.
    json = `"resource":{${attributes(resource.attributes).slice(1)}}`;
    if (!resource.asyncAttributesPending) RESOURCES.set(resource, json);
  }
  return json;
}

function scopeJson(scope: InstrumentationScope): string {
  return `"scope":{"name":${jsonString(scope.name)}${scope.version ? `,"version":${jsonString(scope.version)}` : ''}}`;
}

function sameScope(a: InstrumentationScope, b: InstrumentationScope): boolean {
  return a === b || (a.name === b.name && (a.version ?? '') === (b.version ?? '') && (a.schemaUrl ?? '') === (b.schemaUrl ?? ''));
}

function scopeKey(scope: InstrumentationScope): string {
  return `${scope.name}@${scope.version ?? ''}:${scope.schemaUrl ?? ''}`;
}

/**
 * The body being written: each span's JSON is a short string written into one buffer as it is made. (Building
 * the whole body as one string and encoding it at the end cost twice as much: V8 flattens a rope of thousands
 * of pieces into a large-object string before any byte is written, and Buffer.from or TextEncoder then copy
 * it again through a slower path than a write into a buffer already there.)
 */
class Body {
  private buffer: Buffer;
  private length = 0;

  constructor(buffer: Buffer) {
    this.buffer = buffer;
  }

  put(text: string): void {
    // Up to 3 bytes per UTF-16 unit (a surrogate pair is 2 units, 4 bytes).
    if (this.length + text.length * 3 > this.buffer.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(this.buffer.length * 2, this.length + text.length * 3));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    this.length += (this.buffer as unknown as Utf8Writable).utf8Write(text, this.length);
  }

  /** The bytes written, and the whole buffer (to be given back to encodeTraceRequest once they are sent). */
  done(): { bytes: Buffer; buffer: Buffer } {
    return { bytes: this.buffer.subarray(0, this.length), buffer: this.buffer };
  }
}

/** Buffer's own UTF-8 write, without Buffer.prototype.write's argument checks (offsets here are always in range). */
interface Utf8Writable {
  utf8Write(text: string, offset: number): number;
}

function scopeSpans(body: Body, scope: InstrumentationScope, list: readonly ReadableSpan[]): void {
  body.put(`{${scopeJson(scope)},"spans":[`);
  for (let i = 0; i < list.length; i++) body.put(i > 0 ? `,${spanJson(list[i]!)}` : spanJson(list[i]!));
  body.put(scope.schemaUrl ? `],"schemaUrl":${jsonString(scope.schemaUrl)}}` : ']}');
}

/**
 * The ExportTraceServiceRequest for `spans`, as UTF-8 bytes, grouped by resource and then by instrumentation
 * scope as the SDK groups them (by the resource object, and the scope's name, version and schema URL).
 * Tenement's spans share one resource and one scope: that batch is written without grouping. `reuse`: a
 * buffer a previous call returned whose bytes are no longer needed (written into, or replaced when too small).
 */
export function encodeTraceRequest(spans: readonly ReadableSpan[], reuse?: Buffer): { bytes: Buffer; buffer: Buffer } {
  const body = new Body(reuse ?? Buffer.allocUnsafeSlow(Math.max(4096, spans.length * 768)));
  if (spans.length === 0) {
    body.put('{"resourceSpans":[]}');
    return body.done();
  }
  const first = spans[0]!;
  let same = true;
  for (let i = 1; i < spans.length && same; i++) {
    const s = spans[i]!;
    same = s.resource === first.resource && sameScope(s.instrumentationScope, first.instrumentationScope);
  }
  const groups = new Map<Resource, Map<string, ReadableSpan[]>>();
  if (same) groups.set(first.resource, new Map([['', spans as ReadableSpan[]]]));
  else {
    for (const s of spans) {
      let scopes = groups.get(s.resource);
      if (!scopes) groups.set(s.resource, (scopes = new Map()));
      const key = scopeKey(s.instrumentationScope);
      let list = scopes.get(key);
      if (!list) scopes.set(key, (list = []));
      list.push(s);
    }
  }
  body.put('{"resourceSpans":[');
  let r = 0;
  for (const [resource, scopes] of groups) {
    body.put(`${r++ > 0 ? ',' : ''}{${resourceJson(resource)},"scopeSpans":[`);
    let i = 0;
    for (const list of scopes.values()) {
      if (i++ > 0) body.put(',');
      scopeSpans(body, list[0]!.instrumentationScope, list);
    }
    body.put(resource.schemaUrl ? `],"schemaUrl":${jsonString(resource.schemaUrl)}}` : ']}');
  }
  body.put(']}');
  return body.done();
}

/** The JSON encoding for batch.ts: spans written one by one as they end, the request put around them when sent. */
export const jsonEncoding: SpanEncoding = {
  contentType: 'application/json',
  span(out, span, count) {
    out.utf8(count > 0 ? `,${spanJson(span)}` : spanJson(span));
  },
  request(resource, scope, spans, out) {
    out.utf8(`{"resourceSpans":[{${resourceJson(resource)},"scopeSpans":[{${scopeJson(scope)},"spans":[`);
    out.bytes(spans);
    out.utf8(scope.schemaUrl ? `],"schemaUrl":${jsonString(scope.schemaUrl)}}]` : ']}]');
    out.utf8(resource.schemaUrl ? `,"schemaUrl":${jsonString(resource.schemaUrl)}}]}` : '}]}');
  },
  decodeResponse(data) {
    if (data.length === 0) return {};
    try {
      return JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as TraceResponse;
    } catch {
      // A collector answering 2xx with something else than JSON: the spans were still accepted.
      return {};
    }
  },
};
