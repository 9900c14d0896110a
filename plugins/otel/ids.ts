/**
 * Trace and span ids for request records (records.ts): random bytes drawn from a pool refilled in blocks (one
 * crypto call per block), each id handed out as a slice of the block's hex, converted once per refill (what the
 * `traceparent` header and SpanContexts need), and remembered as where its bytes lie in the block, so the
 * protobuf writer copies them from there instead of decoding the hex again (on sliced strings, 5 ids a request:
 * about 0.6 µs against 0.08). An id whose block has been refilled since (its request outlived a block: 1,024
 * requests' worth) is decoded from its hex as before.
 */
import { randomFillSync } from 'node:crypto';
import type { Bytes } from './bytes.ts';
import { id } from './protobuf-wire.ts';

const POOL_BYTES = 32 * 1024;
const POOL = Buffer.allocUnsafe(POOL_BYTES);
let poolHex = '';
let poolOffset = POOL_BYTES;
/** Counts refills: the block an id was drawn from is still in POOL while this has not moved. */
let block = -1;

/** Where the id drawn last lies: its block and offset (read right after newTraceId or newSpanId). */
export const drawn = { block: -1, at: -1 };

function randomHex(bytes: number): string {
  for (;;) {
    if (poolOffset + bytes > POOL_BYTES) {
      randomFillSync(POOL);
      poolHex = POOL.toString('hex');
      poolOffset = 0;
      // Kept a small integer: it wraps after 2^30 refills (10^12 requests), far past any request's life.
      block = block >= 0x3fffffff ? 0 : block + 1;
    }
    const start = poolOffset;
    poolOffset += bytes;
    // All-zero ids are invalid (W3C trace-context); vanishingly rare, but drawn again rather than sent.
    for (let i = start; i < poolOffset; i++) {
      if (POOL[i] !== 0) {
        drawn.block = block;
        drawn.at = start;
        return poolHex.slice(start * 2, poolOffset * 2);
      }
    }
  }
}

export const newTraceId = (): string => randomHex(16);
export const newSpanId = (): string => randomHex(8);

/**
 * An id field (`tag`, size, bytes): copied from the pool when `idBlock` is the current block (`at` its offset),
 * else decoded from `hex` (ids from a caller's `traceparent`, or drawn before the last refill).
 */
export function pooledId(out: Bytes, tag: number, idBlock: number, at: number, hex: string, size: number): void {
  if (idBlock !== block || at < 0) return id(out, tag, hex, size);
  out.ensure(size + 2);
  const b = out.buffer;
  let p = out.length;
  b[p++] = tag;
  b[p++] = size;
  for (let i = 0; i < size; i++) b[p + i] = POOL[at + i]!;
  out.length = p + size;
}
