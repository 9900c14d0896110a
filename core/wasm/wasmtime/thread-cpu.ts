/**
 * The calling thread's CPU time (clock_gettime(CLOCK_THREAD_CPUTIME_ID)), for what a guest run on the main thread
 * costs that thread (inline-budget.ts, inline.ts). Wall time would count the moments the host kept the thread off
 * its core, when nothing else ran on it either: on a loaded host every short guest would look long.
 */
import { loadLibc } from './captures.ts';

const CLOCK_THREAD_CPUTIME_ID = 3;
/** struct timespec { int64 tv_sec; int64 tv_nsec } */
const spec = Buffer.alloc(16);
let gettime: ((clock: number, out: Buffer) => number) | null = null;

/** This thread's CPU time in ms, or NaN when the clock cannot be read. */
export function threadCpuMs(): number {
  gettime ??= loadLibc().clock_gettime;
  if (gettime(CLOCK_THREAD_CPUTIME_ID, spec) !== 0) return NaN;
  return Number(spec.readBigInt64LE(0)) * 1_000 + Number(spec.readBigInt64LE(8)) / 1_000_000;
}
