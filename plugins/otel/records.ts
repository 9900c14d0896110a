/**
 * Request spans (SERVER, CLIENT, wasm invoke) recorded without SDK Span objects: the SDK's span made, validated
 * and sanitized every attribute, generated ids from Math.random per 4 bytes and converted times on every call,
 * about 20 µs of main-thread CPU for the two spans of a request. A record is a plain object holding what the
 * request already has (strings, numbers, performance.now() readings); the exporter reads it as a ReadableSpan,
 * converting times only then, in the batch, off the request path. The batch processor bounds the queue and
 * drops past it, as it does for SDK spans.
 */
import { SpanKind, SpanStatusCode, type Attributes, type AttributeValue, type HrTime, type Link, type SpanContext, type SpanStatus } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';

/** performance.timeOrigin split once into whole seconds and nanoseconds, so readings convert without losing precision. */
export const ORIGIN_SECONDS = Math.floor(performance.timeOrigin / 1000);
export const ORIGIN_NANOS = Math.round((performance.timeOrigin - ORIGIN_SECONDS * 1000) * 1e6);

/**
 * A performance.now() reading as an absolute time, on one clock for every span. (Given a number, the SDK
 * converts it with an offset it takes from Date.now() per span, so two spans of one trace could disagree by up
 * to a millisecond: a child would seem to start before its parent.) Monotonic in `perf`, to the nanosecond:
 * the OTLP writer (otlp-json.ts) writes the same figures for records as for SDK spans given these times.
 */
export function at(perf: number): HrTime {
  const nanos = ORIGIN_NANOS + Math.round(perf * 1e6);
  const carry = Math.floor(nanos / 1e9);
  return [ORIGIN_SECONDS + carry, nanos - carry * 1e9];
}

/** The same instant as at(perf), as OTLP JSON writes it: decimal nanoseconds since the epoch. */
export function unixNanos(perf: number): string {
  const nanos = ORIGIN_NANOS + Math.round(perf * 1e6);
  const carry = Math.floor(nanos / 1e9);
  return `${ORIGIN_SECONDS + carry}${String(1e9 + (nanos - carry * 1e9)).slice(1)}`;
}

/** ATTR_HTTP_RESPONSE_STATUS_CODE (written out: records.ts does not load the semantic conventions). */
export const STATUS_CODE = 'http.response.status_code';
const UNSET: SpanStatus = { code: SpanStatusCode.UNSET };
const NO_LINKS: Link[] = [];
const NO_EVENTS: TimedEvent[] = [];
/** The own attributes of a span that has none of its own yet (a CLIENT span's are all shared): set() replaces it. */
export const NO_ATTRIBUTES: Attributes = Object.freeze({});

/** Where records go when they end: the batch processor, as a ReadableSpan. */
export interface RecordSink {
  resource: Resource;
  scope: InstrumentationScope;
  onEnd(span: ReadableSpan): void;
}

/**
 * Attributes many request spans share (an instance's names, the method, the host or the instance's address),
 * made once (shared-attributes.ts) and written once per encoding: otlp-proto.ts copies `proto` into each span.
 */
export class SharedAttributes {
  /** The span's protobuf KeyValues of `attributes` (each with its field tag and length), once written. */
  proto: Buffer | null = null;
  constructor(readonly attributes: Readonly<Attributes>) {}
}

export class SpanRecord implements ReadableSpan {
  /** This span's own attributes; with `shared`'s, its attributes. */
  own: Attributes;
  shared: SharedAttributes | null;
  status: SpanStatus = UNSET;
  /**
   * The response's status code (http.response.status_code), 0 while none: a field of its own, not a member of
   * `own`, so a request span's attribute object is not grown per request (the writers add it after `own`).
   */
  statusCode = 0;
  /** performance.now() readings; -1 while open. */
  end = -1;
  /**
   * Where the bytes of its trace, span and parent span ids lie in the id pool (ids.ts: block, offset), for the
   * protobuf writer to copy; -1: not drawn from the pool (a caller's), decoded from the hex.
   */
  traceBlock = -1;
  traceAt = -1;
  spanBlock = -1;
  spanAt = -1;
  parentBlock = -1;
  parentAt = -1;
  private readonly context: SpanContext;
  private readonly sink: RecordSink;

  constructor(
    sink: RecordSink,
    readonly name: string,
    readonly kind: SpanKind,
    context: SpanContext,
    readonly parentSpanContext: SpanContext | undefined,
    readonly start: number,
    attributes: Attributes,
    shared: SharedAttributes | null = null,
  ) {
    this.context = context;
    this.own = attributes;
    this.shared = shared;
    this.sink = sink;
  }

  // What every record has alike is read through the prototype, not stored in each (a record lives per request).
  get resource(): Resource {
    return this.sink.resource;
  }

  get instrumentationScope(): InstrumentationScope {
    return this.sink.scope;
  }

  get links(): Link[] {
    return NO_LINKS;
  }

  get events(): TimedEvent[] {
    return NO_EVENTS;
  }

  get droppedAttributesCount(): number {
    return 0;
  }

  get droppedEventsCount(): number {
    return 0;
  }

  get droppedLinksCount(): number {
    return 0;
  }

  spanContext(): SpanContext {
    return this.context;
  }

  get startTime(): HrTime {
    return at(this.start);
  }

  get endTime(): HrTime {
    return at(this.end < 0 ? this.start : this.end);
  }

  get duration(): HrTime {
    const ms = Math.max(0, (this.end < 0 ? this.start : this.end) - this.start);
    const seconds = Math.floor(ms / 1000);
    return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
  }

  get ended(): boolean {
    return this.end >= 0;
  }

  /** All its attributes (the shared ones first), as one object: made for whoever asks, the OTLP JSON writer. */
  get attributes(): Attributes {
    const code = this.statusCode;
    if (code > 0) return this.shared === null ? { ...this.own, [STATUS_CODE]: code } : { ...this.shared.attributes, ...this.own, [STATUS_CODE]: code };
    return this.shared === null ? this.own : { ...this.shared.attributes, ...this.own };
  }

  set(key: string, value: AttributeValue): void {
    const shared = this.shared;
    // A shared attribute changed (another instance served the request): this span's are its own from now on.
    if (shared !== null && Object.hasOwn(shared.attributes, key)) {
      this.own = { ...shared.attributes, ...this.own };
      this.shared = null;
    } else if (this.own === NO_ATTRIBUTES) this.own = {};
    this.own[key] = value;
  }

  fail(message: string): void {
    this.status = { code: SpanStatusCode.ERROR, message };
  }
}

export { SpanKind };
