/**
 * Bounds the files a WASI guest holds open on engines whose WASI has no such setting (wasmtime), by rewriting
 * the guest at compile time so its descriptor-making imports go through a tiny adapter module that counts.
 *
 * Why a wasm adapter and not a host wrapper: wasmtime's preview 1 functions read and write the memory that
 * their *calling instance* exports as `memory` (wiggle's `caller.get_export("memory")`); a wrapper called from
 * the host has no calling instance, so it cannot call the real `path_open`. The adapter is a wasm instance that
 * calls the real functions itself, so it must export the guest's memory: the guest's first memory moves into the
 * adapter (defined there with the guest's limits, the cap included) and the guest imports it. Nothing else of
 * the guest changes: memory and function indices stay (a memory import takes index 0, where the defined one
 * was; renamed function imports keep their places), so no code is rewritten.
 *
 * The adapter (one instance per request, so its count starts at 0): `path_open` and `sock_accept` fail with
 * EMFILE once MAX_GUEST_FILES are open and count successes; `fd_close` of a descriptor above 3 (0-2 are stdio,
 * 3 the preopened DATA_DIR) uncounts it; `fd_renumber` refuses 0-3 (EBADF) and uncounts the descriptor it
 * replaces. Every descriptor above 3 was counted when made, so what is counted never falls below what is open.
 */
import { Reader, joinParts, leb, name, section, sectionsOf, skipImportDescriptor } from './cap-memory.ts';

/** Files one request may hold open at once (the same bound as node:wasi's wrapper on V8, wasi-run.ts). */
export const MAX_GUEST_FILES = 128;
/** The module name the guest's rewritten imports name (reserved: a guest importing it is refused). */
export const ADAPTER_MODULE = 'tnm_files';
/** Bumped whenever the rewrite or the adapter changes: artifacts on disk are named with it. */
export const ADAPTER_VERSION = 1;

const WASI = 'wasi_snapshot_preview1';
const WRAPPED = ['path_open', 'fd_close', 'fd_renumber', 'sock_accept'] as const;
/** Imports that make descriptors: a guest importing none of them cannot open a file, and is left as it is. */
const MAKERS = new Set(['path_open', 'sock_accept']);
const SECTION_IMPORT = 2;
const SECTION_MEMORY = 5;
const KIND_FUNC = 0;
const KIND_MEMORY = 2;
const LIMITS_HAS_MAX = 1;

export interface MemoryLimits {
  min: number;
  max: number;
}

export interface BoundedGuest {
  /** The guest, its descriptor imports and its first memory now taken from ADAPTER_MODULE. */
  guest: Uint8Array;
  /** The adapter to instantiate first in the same store and link as ADAPTER_MODULE (filesAdapter(memory)). */
  memory: MemoryLimits;
}

const decoder = new TextDecoder('utf-8', { fatal: true });
const vector = (items: number[][]): number[] => [...leb(items.length), ...items.flat()];

/**
 * Rewrites a core module (its memory cap already written in, capMemory) so its descriptor-making WASI imports go
 * through the adapter; null when it imports none of them (it cannot open a file: nothing to bound).
 * Throws for a module that already imports from ADAPTER_MODULE.
 */
export function boundGuestFiles(bytes: Uint8Array): BoundedGuest | null {
  const sections = sectionsOf(bytes);
  const imports = sections.find((s) => s.id === SECTION_IMPORT);
  if (!imports) return null;
  const reader = new Reader(bytes, imports.bodyStart);
  const count = reader.u32();
  const entries: number[][] = [];
  let makesFiles = false;
  for (let i = 0; i < count; i++) {
    const moduleLength = reader.u32();
    const moduleName = decoder.decode(bytes.subarray(reader.pos, reader.pos + moduleLength));
    reader.pos += moduleLength;
    const fieldLength = reader.u32();
    const fieldName = decoder.decode(bytes.subarray(reader.pos, reader.pos + fieldLength));
    reader.pos += fieldLength;
    const kindAt = reader.pos;
    const kind = reader.byte();
    skipImportDescriptor(reader, kind);
    if (reader.pos > imports.end) throw new Error('truncated wasm binary');
    if (moduleName === ADAPTER_MODULE) throw new Error(`the module imports from '${ADAPTER_MODULE}', a name the host reserves`);
    const wrapped = kind === KIND_FUNC && moduleName === WASI && (WRAPPED as readonly string[]).includes(fieldName);
    if (wrapped && MAKERS.has(fieldName)) makesFiles = true;
    entries.push([...name(wrapped ? ADAPTER_MODULE : moduleName), ...name(fieldName), ...bytes.subarray(kindAt, reader.pos)]);
  }
  if (!makesFiles) return null;

  // The first defined memory becomes an import (index 0 stays index 0: capMemory refuses imported memories).
  const memories = sections.find((s) => s.id === SECTION_MEMORY);
  let memory: MemoryLimits = { min: 0, max: 0 };
  let memorySection: number[] | null = null;
  if (memories) {
    const m = new Reader(bytes, memories.bodyStart);
    const defined = m.u32();
    if (defined > 0) {
      const flags = m.byte();
      const min = m.u32();
      if (!(flags & LIMITS_HAS_MAX)) throw new Error('the memory has no maximum: write the cap first (capMemory)');
      memory = { min, max: m.u32() };
      entries.push([...name(ADAPTER_MODULE), ...name('memory'), KIND_MEMORY, LIMITS_HAS_MAX, ...leb(memory.min), ...leb(memory.max)]);
      memorySection = defined > 1 ? section(SECTION_MEMORY, [...leb(defined - 1), ...bytes.subarray(m.pos, memories.end)]) : [];
    }
  }

  const parts: Uint8Array[] = [bytes.subarray(0, imports.start), Uint8Array.from(section(SECTION_IMPORT, vector(entries)))];
  let pos = imports.end;
  if (memories && memorySection !== null) {
    parts.push(bytes.subarray(pos, memories.start), Uint8Array.from(memorySection));
    pos = memories.end;
  }
  parts.push(bytes.subarray(pos));
  return { guest: joinParts(parts), memory };
}

const I32 = 0x7f;
const I64 = 0x7e;
const op = {
  if: [0x04, 0x40],
  end: 0x0b,
  return: 0x0f,
  call: 0x10,
  localGet: 0x20,
  localTee: 0x22,
  globalGet: 0x23,
  globalSet: 0x24,
  i32Const: 0x41,
  eqz: 0x45,
  ne: 0x47,
  gtU: 0x4b,
  leU: 0x4d,
  geU: 0x4f,
  add: 0x6a,
  sub: 0x6b,
  and: 0x71,
  or: 0x72,
};
/** Signed LEB128 of a small non-negative constant. */
const sleb = (value: number): number[] => (value < 64 ? [value] : [(value & 0x7f) | 0x80, ...sleb(value >> 7)]);
const ERRNO_BADF = 8;
const ERRNO_MFILE = 33;

const countUp = [op.globalGet, 0, op.i32Const, 1, op.add, op.globalSet, 0];
const countDown = [op.globalGet, 0, op.i32Const, 1, op.sub, op.globalSet, 0];
/** `if (open >= MAX) return EMFILE` */
const atBound = [op.globalGet, 0, op.i32Const, ...sleb(MAX_GUEST_FILES), op.geU, ...op.if, op.i32Const, ERRNO_MFILE, op.return, op.end];
const getAll = (n: number): number[] => Array.from({ length: n }, (_, i) => [op.localGet, i]).flat();
/** A body with one i32 local (the result, at index `params`). */
const body = (code: number[]): number[] => {
  const bytes = [1, 1, I32, ...code, op.end];
  return [...leb(bytes.length), ...bytes];
};

/** A maker (path_open: 9 params, sock_accept: 3): bounded, counted on success. */
const maker = (params: number, callee: number): number[] =>
  body([...atBound, ...getAll(params), op.call, callee, op.localTee, params, op.eqz, ...op.if, ...countUp, op.end, op.localGet, params]);

/** The adapter module for a guest whose first memory has `memory`'s limits (the bytes depend only on them). */
export function filesAdapter(memory: MemoryLimits): Uint8Array {
  const types = [
    [0x60, 9, I32, I32, I32, I32, I32, I64, I64, I32, I32, 1, I32], // path_open
    [0x60, 1, I32, 1, I32], // fd_close
    [0x60, 2, I32, I32, 1, I32], // fd_renumber
    [0x60, 3, I32, I32, I32, 1, I32], // sock_accept
  ];
  const imports = WRAPPED.map((field, type) => [...name(WASI), ...name(field), KIND_FUNC, type]);
  const exports = [[...name('memory'), KIND_MEMORY, 0], ...WRAPPED.map((field, i) => [...name(field), KIND_FUNC, 4 + i])];
  const codes = [
    maker(9, 0),
    // fd_close: a descriptor above 3 that closed is one fewer open.
    body([op.localGet, 0, op.call, 1, op.localTee, 1, op.eqz, op.localGet, 0, op.i32Const, 3, op.gtU, op.and, ...op.if, ...countDown, op.end, op.localGet, 1]),
    // fd_renumber: never over or from stdio and the preopen; the descriptor it replaces is closed.
    body([
      op.localGet, 0, op.i32Const, 3, op.leU, op.localGet, 1, op.i32Const, 3, op.leU, op.or, ...op.if, op.i32Const, ERRNO_BADF, op.return, op.end,
      op.localGet, 0, op.localGet, 1, op.call, 2, op.localTee, 2, op.eqz, op.localGet, 0, op.localGet, 1, op.ne, op.and, ...op.if, ...countDown, op.end,
      op.localGet, 2,
    ]),
    maker(3, 3),
  ];
  return Uint8Array.from([
    0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, vector(types)),
    ...section(2, vector(imports)),
    ...section(3, vector([[0], [1], [2], [3]])),
    ...section(5, vector([[LIMITS_HAS_MAX, ...leb(memory.min), ...leb(memory.max)]])),
    ...section(6, vector([[I32, 1, op.i32Const, 0, op.end]])),
    ...section(7, vector(exports)),
    ...section(10, vector(codes)),
  ]);
}
