/**
 * A thread of its own that makes the main thread's WASI configs, each with its stdout and stderr captures
 * attached, ahead of the stores that take them, and frees the spent stores (config-preparer-worker.ts). The work
 * after an inline call's answer (prepared.ts afterAnswer) was a third of the main thread's time at one request
 * at a time, and the next request arrived while it ran: two memfds, wasmtime's open of each through
 * /proc/self/fd, their sizing and seals, and the spent store's deletion. None of it is tied to a thread. What
 * stays on the main thread is the store and its instance, whose instantiation uses the main thread's linker.
 *
 * Configs wait in SLOTS slots (config-slots.ts). Whenever none is ready (the thread is starting, or behind, or
 * gone), the main thread makes its own, as before; a thread that failed is not started again.
 */
import { Worker } from 'node:worker_threads';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { bundledWorker } from '../../bundled-worker.ts';
import { FileCapture, type Libc } from './captures.ts';
import { ERR_FD, ERR_THEIRS, EMPTY, FIELDS, FREE_FIELDS, OUT_FD, OUT_THEIRS, READY, SLOTS, WASI, eachFreed, slotsBuffer, slotsOf, type PreparerData, type PreparerMessage, type Slots } from './config-slots.ts';
import type { Ptr } from './ffi.ts';

const WORKER = fileURLToPath(new URL(import.meta.url.endsWith('.js') ? './config-preparer-worker.js' : './config-preparer-worker.ts', import.meta.url));
/** Spent stores held for the next message at most (a caller that never reaches afterAnswer still frees them). */
const MAX_PENDING = 64;
/**
 * Spent stores sent to the thread and not yet freed, at most: past it (a thread that falls behind under load) the
 * main thread frees its own, so the descriptors they hold stay bounded.
 */
const MAX_QUEUED = 256;

export interface ReadyConfig {
  wasi: Ptr;
  out: FileCapture;
  err: FileCapture;
}

/** How many configs the main thread took from the preparer, and how many it had to make itself. */
export const configCounts = { taken: 0, madeHere: 0 };

/** Frees a spent store on the main thread: the values of one freeElsewhere call. */
export type FreeHere = (store: Ptr, wasi: Ptr | null, outFd: number, errFd: number) => void;

let worker: Worker | null = null;
let slots: Slots | null = null;
let failed = false;
let pending: bigint[] = [];
/** A slot was emptied since the last message: the thread should fill it. */
let emptied = false;

/**
 * Starts the thread (once per process; never again after it failed). `stdoutCap`/`stderrCap`: the captures'
 * caps; `freeHere`: what frees the spent stores still waiting for it if the thread ends.
 */
export function startConfigPreparer(library: string, namePrefix: string, stdoutCap: number, stderrCap: number, freeHere: FreeHere): void {
  if (worker || failed) return;
  try {
    const buffer = slotsBuffer();
    const entry = bundledWorker(WORKER, 'tenement-wasm-preparer');
    const data: PreparerData = { library, slots: buffer, stdoutCap, stderrCap, namePrefix };
    const started = new Worker(new URL(pathToFileURL(entry.file).href), { workerData: data, execArgv: entry.execArgv });
    // A failure of the thread's own leaves the main thread making its configs, as without it; the configs still
    // in their slots are taken as before.
    const stop = (): void => {
      failed = true;
      worker = null;
      const left = pending;
      pending = [];
      eachFreed(left, freeHere);
    };
    started.once('error', stop);
    started.once('exit', stop);
    started.unref();
    worker = started;
    slots = slotsOf(buffer);
  } catch {
    failed = true;
  }
}

/** Configs ready in their slots, each holding its two captures' four descriptors (tests count what is held by design). */
export function readyConfigs(): number {
  let ready = 0;
  if (slots) for (let slot = 0; slot < SLOTS; slot++) if (Atomics.load(slots.states, slot) === READY) ready++;
  return ready;
}

/** The thread, while it runs (tests end it to see the main thread carry on alone). */
export const configPreparerThread = (): Worker | null => worker;

/** A ready config with its captures, taken for the main thread (null: none is ready; make one). */
export function takeConfig(libc: Libc): ReadyConfig | null {
  if (slots) {
    const { states, rows } = slots;
    for (let slot = 0; slot < SLOTS; slot++) {
      if (Atomics.load(states, slot) !== READY) continue;
      const row = slot * FIELDS;
      const config: ReadyConfig = {
        wasi: rows[row + WASI]!,
        out: FileCapture.adopt(libc, Number(rows[row + OUT_FD]), Number(rows[row + OUT_THEIRS])),
        err: FileCapture.adopt(libc, Number(rows[row + ERR_FD]), Number(rows[row + ERR_THEIRS])),
      };
      Atomics.store(states, slot, EMPTY);
      emptied = true;
      configCounts.taken++;
      return config;
    }
  }
  configCounts.madeHere++;
  return null;
}

/**
 * Hands a spent store to the thread to free (with its config if never set on it, and our descriptors of its
 * captures); false when there is no thread (the caller frees it).
 */
export function freeElsewhere(store: Ptr, wasi: Ptr | null, outFd: number, errFd: number): boolean {
  if (!worker || !slots || Atomics.load(slots.queued, 0) >= MAX_QUEUED) return false;
  Atomics.add(slots.queued, 0, 1);
  pending.push(store, wasi ?? 0n, BigInt(outFd), BigInt(errFd));
  if (pending.length >= MAX_PENDING * FREE_FIELDS) sendToPreparer();
  return true;
}

/** Sends what is waiting to be freed, and asks for the empty slots to be filled again. */
export function sendToPreparer(): void {
  if (!worker || (pending.length === 0 && !emptied)) return;
  const message: PreparerMessage = { free: pending };
  pending = [];
  emptied = false;
  worker.postMessage(message);
}
