/**
 * The slots through which the config preparer (config-preparer.ts) hands WASI configs to the main thread: a
 * SharedArrayBuffer of SLOTS states (Int32) and SLOTS rows of FIELDS BigInt64 values. A slot is EMPTY (the
 * preparer may fill it) or READY (its row is written and only the main thread may take it); each side moves a slot
 * only out of the state it owns, so a row is never read while written.
 */
/**
 * Configs waiting at most: enough for a turn of the loop that serves many requests at once (c16: 4 slots left
 * three quarters of the calls making their own; 16 leave under a tenth). Each holds two memfds, sized but not
 * filled (4 descriptors with wasmtime's).
 */
export const SLOTS = 16;
export const EMPTY = 0;
export const READY = 1;

/** A row: the config's pointer, then stdout's and stderr's captures (our descriptor, wasmtime's). */
export const FIELDS = 5;
export const WASI = 0;
export const OUT_FD = 1;
export const OUT_THEIRS = 2;
export const ERR_FD = 3;
export const ERR_THEIRS = 4;

export interface Slots {
  states: Int32Array;
  /** [0]: spent stores sent to the thread and not freed yet (the main thread adds, the thread subtracts). */
  queued: Int32Array;
  rows: BigInt64Array;
}

/** The Int32 cells: the states, the queued count, padding so the rows start 8-aligned. */
const INT_CELLS = SLOTS + 2;

export const slotsBuffer = (): SharedArrayBuffer => new SharedArrayBuffer(4 * INT_CELLS + 8 * SLOTS * FIELDS);

export function slotsOf(buffer: SharedArrayBuffer): Slots {
  return {
    states: new Int32Array(buffer, 0, SLOTS),
    queued: new Int32Array(buffer, 4 * SLOTS, 1),
    rows: new BigInt64Array(buffer, 4 * INT_CELLS, SLOTS * FIELDS),
  };
}

/** What the preparer sends itself: caps and names of the captures, and the library to load. */
export interface PreparerData {
  library: string;
  slots: SharedArrayBuffer;
  stdoutCap: number;
  stderrCap: number;
  /** memfd names' prefix: the main thread's, as the main thread owns every config it takes. */
  namePrefix: string;
}

/**
 * From the main thread: spent stores to free, FREE_FIELDS values each (the store, its config if it was never set
 * on it, our descriptors of its two captures; 0n and -1n for none), then fill the empty slots again.
 */
export interface PreparerMessage {
  free: bigint[];
}
export const FREE_FIELDS = 4;

/** Each spent store in a `free` list: its store, its config (null: none), our two descriptors (-1: none). */
export function eachFreed(values: readonly bigint[], free: (store: bigint, wasi: bigint | null, outFd: number, errFd: number) => void): void {
  for (let at = 0; at + FREE_FIELDS <= values.length; at += FREE_FIELDS) {
    const [store, wasi, outFd, errFd] = values.slice(at, at + FREE_FIELDS) as [bigint, bigint, bigint, bigint];
    free(store, wasi === 0n ? null : wasi, Number(outFd), Number(errFd));
  }
}
