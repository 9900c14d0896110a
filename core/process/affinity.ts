/**
 * The CPU affinity of threads of this process, through libc (Node has no API for it): read, set, and the CPU
 * the calling thread runs on. Used by the proxy's CPU pinning (core/dataplane/cpu-pin.ts).
 *
 * A thread's mask is inherited by every thread it creates and by every process it forks, and Node forks from
 * its main thread. So while the main thread is pinned, whatever starts a process that outlives the moment
 * (an instance, a sandbox, a proxy worker, HAProxy) does it inside `unpinnedWhile`, which gives the main thread
 * its whole mask back for that one synchronous call; threads made meanwhile are given theirs back by the
 * pinning's own sweep (`releaseThreadsPinnedTo`).
 */
import { readdirSync } from 'node:fs';
import { koffi } from '../wasm/wasmtime/koffi-lazy.ts';

/** glibc's cpu_set_t: 1,024 CPUs. */
const MASK_BYTES = 128;

interface Libc {
  getaffinity(tid: number, size: number, mask: Buffer): number;
  setaffinity(tid: number, size: number, mask: Buffer): number;
  getcpu(): number;
}

let libc: Libc | null | undefined;

function bind(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    const lib = koffi.load('libc.so.6');
    libc = {
      getaffinity: lib.func('int sched_getaffinity(int pid, size_t size, _Out_ uint8_t *mask)') as Libc['getaffinity'],
      setaffinity: lib.func('int sched_setaffinity(int pid, size_t size, const uint8_t *mask)') as Libc['setaffinity'],
      getcpu: lib.func('int sched_getcpu()') as Libc['getcpu'],
    };
  } catch {
    // No koffi build for this platform, or no glibc: affinity stays the kernel's business.
    libc = null;
  }
  return libc;
}

/** Whether this process can read and set thread affinities (Linux with glibc, koffi loadable). */
export function affinitySupported(): boolean {
  return process.platform === 'linux' && bind() !== null;
}

/** The CPUs thread `tid` may run on (0: the calling thread), ascending; null when it cannot be read (a thread that ended). */
export function threadCpus(tid = 0): number[] | null {
  const lib = bind();
  if (lib === null) return null;
  const mask = Buffer.alloc(MASK_BYTES);
  if (lib.getaffinity(tid, MASK_BYTES, mask) !== 0) return null;
  const cpus: number[] = [];
  for (let byte = 0; byte < MASK_BYTES; byte++) {
    const bits = mask[byte]!;
    if (bits === 0) continue;
    for (let bit = 0; bit < 8; bit++) if (bits & (1 << bit)) cpus.push(byte * 8 + bit);
  }
  return cpus;
}

/** Restricts thread `tid` (0: the calling thread) to `cpus`; false when the kernel refused (a CPU not in its cpuset, a thread gone). */
export function setThreadCpus(tid: number, cpus: readonly number[]): boolean {
  const lib = bind();
  if (lib === null || cpus.length === 0) return false;
  const mask = Buffer.alloc(MASK_BYTES);
  for (const cpu of cpus) {
    if (!Number.isInteger(cpu) || cpu < 0 || cpu >= MASK_BYTES * 8) return false;
    mask[cpu >> 3]! |= 1 << (cpu & 7);
  }
  return lib.setaffinity(tid, MASK_BYTES, mask) === 0;
}

/** The CPU the calling thread is running on, or -1. */
export function currentCpu(): number {
  return bind()?.getcpu() ?? -1;
}

/** The thread ids of this process (the main thread's is the pid). */
export function threadIds(): number[] {
  try {
    return readdirSync('/proc/self/task').map(Number).filter(Number.isInteger);
  } catch {
    return [];
  }
}

/**
 * What the main thread was allowed before it was pinned, while it is: set by the pinning, read by
 * `unpinnedWhile`. Null when the main thread is not pinned.
 */
let wholeMask: readonly number[] | null = null;

export function notePinned(whole: readonly number[] | null): void {
  wholeMask = whole;
}

/**
 * Runs `start` (a synchronous spawn, fork or thread start) with the main thread's whole mask, so what it starts
 * inherits that and not the pin; the pin is put back after. Without a pin it only runs `start`.
 */
export function unpinnedWhile<T>(start: () => T): T {
  const whole = wholeMask;
  if (whole === null) return start();
  const pinned = threadCpus(0);
  setThreadCpus(0, whole);
  try {
    return start();
  } finally {
    if (pinned !== null) setThreadCpus(0, pinned);
  }
}

/**
 * Gives every thread of this process other than the main one that is restricted to exactly `pinned` the
 * `whole` mask back: threads started by the main thread while it was pinned (a wasm pool's replacement worker,
 * libuv's pool started late) inherited the pin. `known` holds the ids already looked at and is updated.
 */
export function releaseThreadsPinnedTo(pinned: readonly number[], whole: readonly number[], known: Set<number>): number {
  let released = 0;
  const live = threadIds();
  for (const tid of live) {
    if (tid === process.pid || known.has(tid)) continue;
    known.add(tid);
    const cpus = threadCpus(tid);
    if (cpus !== null && cpus.length === pinned.length && cpus.every((cpu, i) => cpu === pinned[i]) && setThreadCpus(tid, whole)) released++;
  }
  // Ids of threads that ended may be reused by new ones: forget them.
  if (known.size > live.length * 2 + 64) {
    const alive = new Set(live);
    for (const tid of known) if (!alive.has(tid)) known.delete(tid);
  }
  return released;
}
