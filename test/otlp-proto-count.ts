/**
 * Counts the spans of an OTLP protobuf ExportTraceServiceRequest without building objects, reading and checking
 * every field as a collector's decoder does (wire types, lengths within their message, UTF-8 strings, id sizes).
 * The benchmark's receiver uses it; test/otlp-proto-decode.ts builds the spans the tests look at.
 * Field numbers: opentelemetry-proto's collector/trace/v1, trace/v1, common/v1 and resource/v1.
 */
import { isUtf8 } from 'node:buffer';

/**
 * What each length-delimited field of each message holds, by field number: a message (named here), a UTF-8
 * string, an id of 16 or 8 bytes (or empty, for a root's parent), or bytes. Varint and fixed fields are read
 * by their wire type. Fields not named are skipped as unknown.
 */
const SCHEMA: Record<string, Record<number, string>> = {
  request: { 1: 'resourceSpans' },
  resourceSpans: { 1: 'resource', 2: 'scopeSpans', 3: 'string' },
  resource: { 1: 'keyValue' },
  scopeSpans: { 1: 'scope', 2: 'span', 3: 'string' },
  scope: { 1: 'string', 2: 'string', 3: 'keyValue' },
  span: { 1: 'id16', 2: 'id8', 3: 'string', 4: 'id8', 5: 'string', 9: 'keyValue', 11: 'event', 13: 'link', 15: 'status' },
  event: { 2: 'string', 3: 'keyValue' },
  link: { 1: 'id16', 2: 'id8', 3: 'string', 4: 'keyValue' },
  status: { 2: 'string' },
  keyValue: { 1: 'string', 2: 'anyValue' },
  anyValue: { 1: 'string', 5: 'arrayValue', 6: 'keyValueList', 7: 'bytes' },
  arrayValue: { 1: 'anyValue' },
  keyValueList: { 1: 'keyValue' },
};

/**
 * SCHEMA as numbers, for the walk: per message (by its index in MESSAGES), per field number, what a
 * length-delimited field holds: NOT_NAMED (skipped), STRING, ID16, ID8, BYTES, or MESSAGE + the index.
 */
const NOT_NAMED = 0;
const STRING = 1;
const ID16 = 2;
const ID8 = 3;
const BYTES = 4;
const MESSAGE = 8;
const MESSAGES = Object.keys(SCHEMA);
const SPAN = MESSAGES.indexOf('span');
const FIELDS: Uint8Array[] = MESSAGES.map((name) => {
  const fields = new Uint8Array(16);
  for (const [number, kind] of Object.entries(SCHEMA[name]!)) {
    fields[Number(number)] = kind === 'string' ? STRING : kind === 'id16' ? ID16 : kind === 'id8' ? ID8 : kind === 'bytes' ? BYTES : MESSAGE + MESSAGES.indexOf(kind);
  }
  return fields;
});

/** Whether b[p, end) is UTF-8: ASCII checked here (most strings; a native call per string cost more), the rest natively. */
function utf8(b: Buffer, p: number, end: number): boolean {
  for (let i = p; i < end; i++) if (b[i]! >= 0x80) return isUtf8(b.subarray(p, end));
  return true;
}

/** Where the last varint() ended (one number returned, no object made per varint). */
let after = 0;

/** The varint at b[p], which must end before `end` and within 10 bytes. */
function varint(b: Buffer, p: number, end: number): number {
  let n = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (p >= end) throw new RangeError('truncated varint');
    const byte = b[p++]!;
    n += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      after = p;
      return n;
    }
    scale *= 128;
  }
  throw new RangeError('varint longer than 10 bytes');
}

/**
 * Walks the message in b[p, end), counting spans: every field read and checked, no object made (the bounds
 * are numbers, a one-byte tag or length is read in place).
 */
function walk(b: Buffer, p: number, end: number, message: number, counted: { spans: number }): void {
  if (message === SPAN) counted.spans += 1;
  const fields = FIELDS[message]!;
  while (p < end) {
    let tag = b[p]!;
    if (tag < 0x80) p += 1;
    else {
      tag = varint(b, p, end);
      p = after;
    }
    const wire = tag & 7;
    if (wire === 0) {
      varint(b, p, end);
      p = after;
      continue;
    }
    if (wire === 1 || wire === 5) {
      p += wire === 1 ? 8 : 4;
      if (p > end) throw new RangeError(wire === 1 ? 'truncated fixed64' : 'truncated fixed32');
      continue;
    }
    if (wire !== 2) throw new RangeError(`wire type ${wire}`);
    let length = p < end ? b[p]! : 0x80;
    if (length < 0x80) p += 1;
    else {
      length = varint(b, p, end);
      p = after;
    }
    const start = p;
    if (start + length > end) throw new RangeError(`a field of ${length} bytes runs past its message`);
    p = start + length;
    const number = tag >>> 3;
    const kind = tag < 128 ? fields[number]! : NOT_NAMED;
    if (kind === STRING) {
      if (!utf8(b, start, p)) throw new RangeError('a string that is not UTF-8');
    } else if (kind === ID16 || kind === ID8) {
      if (length !== (kind === ID16 ? 16 : 8) && length !== 0) throw new RangeError(`an id of ${length} bytes`);
    } else if (kind >= MESSAGE) walk(b, start, p, kind - MESSAGE, counted);
  }
}

/**
 * Decodes an ExportTraceServiceRequest without building objects and counts its spans: every field of every
 * message read and checked (wire types, lengths within their message, UTF-8 strings, id sizes), as a
 * collector's protobuf decoder does before it hands the spans on. The benchmark's receiver uses it (it counts
 * and keeps nothing); tests use decodeOtlpProto, which also builds the spans they look at.
 */
export function countOtlpProto(body: Buffer): number {
  const counted = { spans: 0 };
  walk(body, 0, body.length, MESSAGES.indexOf('request'), counted);
  return counted.spans;
}
