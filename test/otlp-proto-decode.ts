/**
 * Decodes an OTLP protobuf ExportTraceServiceRequest (what OTLP/HTTP exporters POST as
 * `application/x-protobuf`, the default encoding) into the same flattened spans as the JSON decoder in
 * test/otlp-receiver.ts. Every field is read and checked against its message's bounds (a truncated or
 * malformed body throws): what a ReceivedSpan holds is decoded, the rest (the scope, links, flags, trace state,
 * list values) read past by wire type, as protobuf readers skip what they do not know.
 * Field numbers: opentelemetry-proto's collector/trace/v1, trace/v1, common/v1 and resource/v1.
 */
import type { ReceivedSpan } from './otlp-receiver.ts';

type Flat = Record<string, string | number | boolean>;

class Reader {
  p: number;
  constructor(
    readonly b: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.p = start;
  }

  get more(): boolean {
    return this.p < this.end;
  }

  varint(): number {
    let n = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.p >= this.end) throw new RangeError('truncated varint');
      const byte = this.b[this.p++]!;
      n += (byte & 0x7f) * scale;
      if (byte < 0x80) return n;
      scale *= 128;
    }
    throw new RangeError('varint longer than 10 bytes');
  }

  /** A varint as the int64 it encodes (negative numbers are two's complement over 10 bytes). */
  int64(): number {
    let n = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (this.p >= this.end) throw new RangeError('truncated varint');
      const byte = this.b[this.p++]!;
      n |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) return Number(BigInt.asIntN(64, n));
    }
    throw new RangeError('varint longer than 10 bytes');
  }

  /** A length-delimited field's bounds, checked against the enclosing message's. */
  sub(): Reader {
    const length = this.varint();
    const start = this.p;
    if (start + length > this.end) throw new RangeError(`a field of ${length} bytes runs past its message`);
    this.p = start + length;
    return new Reader(this.b, start, start + length);
  }

  string(): string {
    const r = this.sub();
    return this.b.toString('utf8', r.p, r.end);
  }

  hex(size: number, what: string): string {
    const r = this.sub();
    if (r.end - r.p !== size && r.end !== r.p) throw new RangeError(`${what} of ${r.end - r.p} bytes`);
    return this.b.toString('hex', r.p, r.end);
  }

  fixed64(): bigint {
    if (this.p + 8 > this.end) throw new RangeError('truncated fixed64');
    const value = this.b.readBigUInt64LE(this.p);
    this.p += 8;
    return value;
  }

  double(): number {
    if (this.p + 8 > this.end) throw new RangeError('truncated double');
    const value = this.b.readDoubleLE(this.p);
    this.p += 8;
    return value;
  }

  fixed32(): number {
    if (this.p + 4 > this.end) throw new RangeError('truncated fixed32');
    const value = this.b.readUInt32LE(this.p);
    this.p += 4;
    return value;
  }

  skip(wire: number): void {
    if (wire === 0) this.varint();
    else if (wire === 1) this.fixed64();
    else if (wire === 2) this.sub();
    else if (wire === 5) this.fixed32();
    else throw new RangeError(`wire type ${wire}`);
  }
}

/** An AnyValue: the scalar it holds, or undefined for a list, a map, bytes or nothing (not flattened). */
function anyValue(r: Reader): string | number | boolean | undefined {
  let value: string | number | boolean | undefined;
  while (r.more) {
    const tag = r.varint();
    switch (tag) {
      case 0x0a:
        value = r.string();
        break;
      case 0x10:
        value = r.varint() !== 0;
        break;
      case 0x18:
        value = r.int64();
        break;
      case 0x21:
        value = r.double();
        break;
      case 0x2a: {
        // ArrayValue { values (1): AnyValue }: read, not flattened.
        const list = r.sub();
        while (list.more) {
          if (list.varint() !== 0x0a) throw new RangeError('ArrayValue field');
          anyValue(list.sub());
        }
        value = undefined;
        break;
      }
      case 0x32: {
        const map = r.sub();
        while (map.more) {
          if (map.varint() !== 0x0a) throw new RangeError('KeyValueList field');
          keyValue(map.sub(), Object.create(null) as Flat);
        }
        value = undefined;
        break;
      }
      case 0x3a:
        r.sub();
        value = undefined;
        break;
      default:
        r.skip(tag & 7);
    }
  }
  return value;
}

function keyValue(r: Reader, into: Flat): void {
  let key = '';
  let value: string | number | boolean | undefined;
  while (r.more) {
    const tag = r.varint();
    if (tag === 0x0a) key = r.string();
    else if (tag === 0x12) value = anyValue(r.sub());
    else r.skip(tag & 7);
  }
  if (value !== undefined) into[key] = value;
}

function resource(r: Reader): Flat {
  const attributes = Object.create(null) as Flat;
  while (r.more) {
    const tag = r.varint();
    if (tag === 0x0a) keyValue(r.sub(), attributes);
    else r.skip(tag & 7);
  }
  return attributes;
}

function event(r: Reader): string {
  let name = '';
  while (r.more) {
    const tag = r.varint();
    if (tag === 0x09) r.fixed64();
    else if (tag === 0x12) name = r.string();
    else if (tag === 0x1a) keyValue(r.sub(), Object.create(null) as Flat);
    else r.skip(tag & 7);
  }
  return name;
}

function status(r: Reader): { code: number; message: string } {
  const out = { code: 0, message: '' };
  while (r.more) {
    const tag = r.varint();
    if (tag === 0x12) out.message = r.string();
    else if (tag === 0x18) out.code = r.varint();
    else r.skip(tag & 7);
  }
  return out;
}

function span(r: Reader, resourceAttributes: Flat): ReceivedSpan {
  const out: ReceivedSpan = {
    traceId: '',
    spanId: '',
    parentSpanId: '',
    name: '',
    kind: 0,
    attributes: Object.create(null) as Flat,
    resource: resourceAttributes,
    status: { code: 0, message: '' },
    events: [],
    startNs: 0n,
    endNs: 0n,
  };
  while (r.more) {
    const tag = r.varint();
    switch (tag) {
      case 0x0a:
        out.traceId = r.hex(16, 'trace id');
        break;
      case 0x12:
        out.spanId = r.hex(8, 'span id');
        break;
      case 0x1a:
        r.string();
        break;
      case 0x22:
        out.parentSpanId = r.hex(8, 'parent span id');
        break;
      case 0x2a:
        out.name = r.string();
        break;
      case 0x30:
        out.kind = r.varint();
        break;
      case 0x39:
        out.startNs = r.fixed64();
        break;
      case 0x41:
        out.endNs = r.fixed64();
        break;
      case 0x4a:
        keyValue(r.sub(), out.attributes);
        break;
      case 0x5a:
        out.events.push(event(r.sub()));
        break;
      case 0x7a:
        out.status = status(r.sub());
        break;
      default:
        // Links (13), dropped counts (10, 12, 14), flags (16): read past.
        r.skip(tag & 7);
    }
  }
  return out;
}

export function decodeOtlpProto(body: Buffer): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  const request = new Reader(body, 0, body.length);
  while (request.more) {
    const tag = request.varint();
    if (tag !== 0x0a) {
      request.skip(tag & 7);
      continue;
    }
    const resourceSpans = request.sub();
    // The resource may come after the scope spans on the wire: the spans are given it once all is read.
    let attributes = Object.create(null) as Flat;
    const spans: ReceivedSpan[] = [];
    while (resourceSpans.more) {
      const field = resourceSpans.varint();
      if (field === 0x0a) attributes = resource(resourceSpans.sub());
      else if (field === 0x12) {
        const scopeSpans = resourceSpans.sub();
        while (scopeSpans.more) {
          const inner = scopeSpans.varint();
          if (inner === 0x12) spans.push(span(scopeSpans.sub(), attributes));
          else scopeSpans.skip(inner & 7);
        }
      } else resourceSpans.skip(field & 7);
    }
    for (const s of spans) s.resource = attributes;
    out.push(...spans);
  }
  return out;
}
