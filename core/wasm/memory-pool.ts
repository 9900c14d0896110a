/**
 * Memories lent to WASI commands on V8 (memory-import.ts says why), one pool per thread. A memory comes back
 * after its request and is zeroed at once, so no byte a request wrote outlives it: the next request, of any
 * tenant, gets a memory that reads as a fresh one (all zero, at the module's initial size). A memory that grew
 * is not taken back (a WebAssembly.Memory cannot shrink, and the guest would see the larger size), nor a large
 * one (zeroing it would cost more than a new one, whose pages the kernel zeroes lazily). Bounded in count per
 * shape and in bytes per thread.
 */
import { WASM_PAGE_BYTES } from './cap-memory.ts';
import type { MemoryShape } from './memory-import.ts';

/** Memories up to this many pages are kept (2 MiB: Rust's default is 17 pages, wasi-libc's 2). */
export const MAX_POOLED_PAGES = 32;
const MAX_FREE_PER_SHAPE = 4;
const MAX_FREE_BYTES = 16 * 1024 * 1024;

const free = new Map<string, WebAssembly.Memory[]>();
let freeBytes = 0;
let lent = 0;
let reused = 0;

const keyOf = (shape: MemoryShape): string => `${shape.initial}:${shape.maximum}`;

/** A zeroed memory of exactly this shape: one given back before, or a new one. */
export function lendMemory(shape: MemoryShape): WebAssembly.Memory {
  lent++;
  const key = keyOf(shape);
  const list = free.get(key);
  const memory = list?.pop();
  if (memory) {
    reused++;
    freeBytes -= memory.buffer.byteLength;
    if (list!.length === 0) free.delete(key);
    return memory;
  }
  return new WebAssembly.Memory({ initial: shape.initial, maximum: shape.maximum });
}

/** Takes a memory back once nothing runs in it; zeroed now, or left to GC when it grew, is large, or the pool is full. */
export function returnMemory(shape: MemoryShape, memory: WebAssembly.Memory): void {
  const bytes = memory.buffer.byteLength;
  if (bytes !== shape.initial * WASM_PAGE_BYTES || shape.initial > MAX_POOLED_PAGES) return;
  const key = keyOf(shape);
  if ((free.get(key)?.length ?? 0) >= MAX_FREE_PER_SHAPE) return;
  // Room for it: the shape least recently given back gives way (a Map keeps insertion order).
  while (freeBytes + bytes > MAX_FREE_BYTES && free.size > 0) {
    const [oldest, memories] = free.entries().next().value as [string, WebAssembly.Memory[]];
    for (const m of memories) freeBytes -= m.buffer.byteLength;
    free.delete(oldest);
  }
  new Uint8Array(memory.buffer).fill(0);
  const list = free.get(key) ?? [];
  free.delete(key);
  list.push(memory);
  free.set(key, list);
  freeBytes += bytes;
}

/** Memories lent and how many of them were given back ones, and what the pool holds now (tests, benches). */
export function memoryPoolStats(): { lent: number; reused: number; free: number; freeBytes: number } {
  let count = 0;
  for (const list of free.values()) count += list.length;
  return { lent, reused, free: count, freeBytes };
}
