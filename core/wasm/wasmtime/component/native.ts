/**
 * Copies between JS buffers and native memory with libc's memcpy. Not `koffi.view`: every view is an external
 * ArrayBuffer that Node 20 never gives back (~230 bytes each, measured: +44 MiB per 200,000 views after full
 * collections), and a component call reads several.
 */
import { koffi, type Ptr } from './ffi.ts';

let memcpy: ((dest: unknown, src: unknown, bytes: number) => unknown) | null = null;

function copy(dest: unknown, src: unknown, bytes: number): void {
  memcpy ??= koffi.load('libc.so.6').func('void *memcpy(void *dest, const void *src, size_t n)');
  memcpy(dest, src, bytes);
}

/** `bytes` bytes at `ptr`, copied into a new Buffer. */
export function readNative(ptr: Ptr, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  if (bytes > 0) copy(out, ptr, bytes);
  return out;
}

/** Writes `data` at `ptr`. */
export function writeNative(ptr: Ptr, data: Buffer): void {
  if (data.length > 0) copy(ptr, data, data.length);
}
