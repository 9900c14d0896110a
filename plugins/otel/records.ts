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
import { randomFillSync } from 'node:crypto';

/**
 * A performance.now() reading as an absolute time, on one clock for every span. (Given a number, the SDK
 * converts it with an offset it takes from Date.now() per span, so two spans of one trace could disagree by up
 * to a millisecond: a child would seem to start before its parent.)
 */
export function at(perf: number): HrTime {
  const ms = performance.timeOrigin + perf;
  const seconds = Math.floor(ms / 1000);
  const nanos = Math.round((ms - seconds * 1000) * 1e6);
  return nanos >= 1e9 ? [seconds + 1, nanos - 1e9] : [seconds, nanos];
}

/** Random bytes for ids, refilled in blocks (one crypto call per 128 requests: 16 + 8 + 8 bytes each). */
const POOL = Buffer.allocUnsafe(4096);
let poolOffset = POOL.length;

function randomHex(bytes: number): string {
  for (;;) {
    if (poolOffset + bytes > POOL.length) {
      randomFillSync(POOL);
      poolOffset = 0;
    }
    const start = poolOffset;
    poolOffset += bytes;
    // All-zero ids are invalid (W3C trace-context); vanishingly rare, but drawn again rather than sent.
    for (let i = start; i < poolOffset; i++) if (POOL[i] !== 0) return POOL.toString('hex', start, poolOffset);
  }
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

const UNSET: SpanStatus = { code: SpanStatusCode.UNSET };
const NO_LINKS: Link[] = [];
const NO_EVENTS: TimedEvent[] = [];

/** Where records go when they end: the batch processor, as a ReadableSpan. */
export interface RecordSink {
  resource: Resource;
  scope: InstrumentationScope;
  onEnd(span: ReadableSpan): void;
}

export class SpanRecord implements ReadableSpan {
  readonly attributes: Attributes;
  status: SpanStatus = UNSET;
  readonly links = NO_LINKS;
  readonly events = NO_EVENTS;
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount = 0;
  readonly droppedLinksCount = 0;
  readonly resource: Resource;
  readonly instrumentationScope: InstrumentationScope;
  /** performance.now() readings; -1 while open. */
  end = -1;
  private readonly context: SpanContext;

  constructor(
    sink: RecordSink,
    readonly name: string,
    readonly kind: SpanKind,
    context: SpanContext,
    readonly parentSpanContext: SpanContext | undefined,
    readonly start: number,
    attributes: Attributes,
  ) {
    this.context = context;
    this.attributes = attributes;
    this.resource = sink.resource;
    this.instrumentationScope = sink.scope;
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

  set(key: string, value: AttributeValue): void {
    this.attributes[key] = value;
  }

  fail(message: string): void {
    this.status = { code: SpanStatusCode.ERROR, message };
  }
}

export { SpanKind };
