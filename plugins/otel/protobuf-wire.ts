/**
 * Protocol buffers' wire format, written by hand into a growable buffer: varints, fixed-width numbers, times as
 * OTLP's fixed64 nanoseconds, strings (cut as the JSON writer cuts them, UTF-8, a lone surrogate as U+FFFD), hex
 * ids as bytes, and nested messages whose length is written once they are (open/close). otlp-proto.ts lays the
 * OTLP messages out with these.
 */
import type { HrTime } from '@opentelemetry/api';
import { Bytes } from './bytes.ts';
import { MAX_STRING } from './otlp-json.ts';
import { ORIGIN_NANOS, ORIGIN_SECONDS } from './records.ts';

export const TWO_32 = 4294967296;

export function varint(out: Bytes, n: number): void {
  out.ensure(10);
  const b = out.buffer;
  let p = out.length;
  while (n >= 0x80) {
    b[p++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  b[p++] = n;
  out.length = p;
}

export const varintSize = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5);

/** An int64 as protobuf writes it: negative numbers are ten bytes of two's complement. */
export function int64(out: Bytes, n: number): void {
  if (n >= 0) return varint(out, n);
  let hi = Math.floor(n / TWO_32);
  let lo = (n - hi * TWO_32) >>> 0;
  hi >>>= 0;
  out.ensure(10);
  const b = out.buffer;
  let p = out.length;
  while (hi !== 0 || lo > 0x7f) {
    b[p++] = (lo & 0x7f) | 0x80;
    lo = ((lo >>> 7) | (hi << 25)) >>> 0;
    hi >>>= 7;
  }
  b[p++] = lo;
  out.length = p;
}

/** Four little-endian bytes at `p` (stored directly: Buffer's writeUInt32LE checks its arguments, 3-5x the cost). */
function word(b: Buffer, p: number, n: number): void {
  b[p] = n;
  b[p + 1] = n >>> 8;
  b[p + 2] = n >>> 16;
  b[p + 3] = n >>> 24;
}

export function fixed32(out: Bytes, n: number): void {
  out.ensure(4);
  word(out.buffer, out.length, n >>> 0);
  out.length += 4;
}

/** seconds * 1e9 + nanos as a fixed64, exactly (the product passes 2^53: it is built from 16-bit halves). */
export function fixed64Nanos(out: Bytes, seconds: number, nanos: number): void {
  if (seconds < 0 || nanos < 0) seconds = nanos = 0;
  const xh = Math.floor(seconds / 65536);
  const a = xh * 1e9;
  const aHi = Math.floor(a / 65536);
  const m = (a - aHi * 65536) * 65536 + (seconds - xh * 65536) * 1e9 + nanos;
  const mHi = Math.floor(m / TWO_32);
  out.ensure(8);
  word(out.buffer, out.length, m - mHi * TWO_32);
  word(out.buffer, out.length + 4, (aHi + mHi) >>> 0);
  out.length += 8;
}

/** performance.timeOrigin as Unix nanoseconds, split once into the fixed64's low and high 32-bit words. */
const ORIGIN_WORDS = (() => {
  const out = new Bytes(8);
  fixed64Nanos(out, ORIGIN_SECONDS, ORIGIN_NANOS);
  const b = out.buffer;
  return { lo: (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0, hi: (b[4]! | (b[5]! << 8) | (b[6]! << 16) | (b[7]! << 24)) >>> 0 };
})();
const ORIGIN_LO = ORIGIN_WORDS.lo;
const ORIGIN_HI = ORIGIN_WORDS.hi;

/**
 * A performance.now() reading (records.ts) as fixed64 Unix nanoseconds, the same instant as at(perf): the
 * origin's words plus the reading's whole nanoseconds (exact below 2^53, 104 days after the origin), one
 * division instead of fixed64Nanos's five (four times per request).
 */
export function perfTime(out: Bytes, perf: number): void {
  const delta = Math.round(perf * 1e6);
  if (!(delta >= 0 && delta <= Number.MAX_SAFE_INTEGER)) {
    const nanos = ORIGIN_NANOS + delta;
    const carry = Math.floor(nanos / 1e9);
    return fixed64Nanos(out, ORIGIN_SECONDS + carry, nanos - carry * 1e9);
  }
  const high = Math.floor(delta / TWO_32);
  let lo = ORIGIN_LO + (delta - high * TWO_32);
  let hi = ORIGIN_HI + high;
  if (lo >= TWO_32) {
    lo -= TWO_32;
    hi += 1;
  }
  out.ensure(8);
  word(out.buffer, out.length, lo);
  word(out.buffer, out.length + 4, hi >>> 0);
  out.length += 8;
}

export function hrTime(out: Bytes, time: HrTime): void {
  fixed64Nanos(out, Math.trunc(time[0]), Math.trunc(time[1]));
}

/** Cut to MAX_STRING characters, one fewer rather than half a surrogate pair (as the JSON writer cuts). */
export function cut(value: string): string {
  if (value.length <= MAX_STRING) return value;
  const last = value.charCodeAt(MAX_STRING - 1);
  return value.slice(0, last >= 0xd800 && last <= 0xdbff ? MAX_STRING - 1 : MAX_STRING);
}

interface RawWrites {
  utf8Write(text: string, offset: number): number;
}

/** A string field: `tag`, length, UTF-8. */
export function string(out: Bytes, tag: number, value: string): void {
  value = cut(value);
  const length = value.length;
  out.ensure(length * 3 + 6);
  const b = out.buffer;
  let p = out.length;
  b[p++] = tag;
  if (length <= 42) {
    // At most 126 bytes: the length is one byte. ASCII (most values) is copied here: a native call costs more.
    let i = 0;
    for (; i < length; i++) {
      const c = value.charCodeAt(i);
      if (c >= 0x80) break;
      b[p + 1 + i] = c;
    }
    const n = i === length ? length : (b as unknown as RawWrites).utf8Write(value, p + 1);
    b[p] = n;
    out.length = p + 1 + n;
    return;
  }
  out.length = p;
  varint(out, Buffer.byteLength(value, 'utf8'));
  out.length += (b as unknown as RawWrites).utf8Write(value, out.length);
}

/** Hex digit values by character code (-1: not a lower-case hex digit). */
export const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 16; i++) HEX['0123456789abcdef'.charCodeAt(i)] = i;

/** An id field of `size` bytes from its hex (a malformed id, which the propagator and generators never make, is zero-padded). */
export function id(out: Bytes, tag: number, hex: string, size: number): void {
  out.ensure(size + 2);
  const b = out.buffer;
  let p = out.length;
  b[p++] = tag;
  b[p++] = size;
  let bad = hex.length === size * 2 ? 0 : -1;
  for (let i = 0; i < size && bad === 0; i++) {
    const c1 = hex.charCodeAt(2 * i);
    const c2 = hex.charCodeAt(2 * i + 1);
    const hi = c1 < 128 ? HEX[c1]! : -1;
    const lo = c2 < 128 ? HEX[c2]! : -1;
    bad = (hi | lo) & ~0xf;
    b[p + i] = (hi << 4) | lo;
  }
  if (bad !== 0) b.fill(0, p, p + size);
  out.length = p + size;
}

/** Reserves `width` bytes for the length of a nested message; close() writes it once the message is written. */
export function open(out: Bytes, width: number): number {
  out.ensure(width);
  const at = out.length;
  out.length += width;
  return at;
}

export function close(out: Bytes, at: number, width: number): void {
  const length = out.length - at - width;
  const size = varintSize(length);
  if (size !== width) {
    out.ensure(size - width);
    out.buffer.copyWithin(at + size, at + width, out.length);
    out.length += size - width;
  }
  const b = out.buffer;
  let n = length;
  let p = at;
  while (n >= 0x80) {
    b[p++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  b[p] = n;
}
