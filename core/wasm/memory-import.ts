/**
 * Makes a WASI command import its memory instead of defining it, so that V8 can run it in a memory lent from a
 * pool (memory-pool.ts) rather than one made for each request. A memory V8 makes is a fresh reservation of
 * several GiB of address space with guard pages: creating it, faulting its first pages in and unmapping it
 * after GC took about 150 of the 175 µs an instantiation cost (examples/wasm-c, measured with perf: munmap,
 * page faults, page-table teardown). Lent, zeroed, the same instantiation takes about 20 µs.
 *
 * The rewrite is exact: the memory keeps its index (0: a module that defines one memory and imports none), its
 * limits (as capMemory left them, so the cap holds) and its export; only where it comes from changes. The limits
 * are also written into a custom section, for the worker, which gets the compiled module but not its bytes.
 */
import { Reader, joinParts, leb, name, section, sectionsOf, type Section } from './cap-memory.ts';

/** Where the rewritten module imports its memory from. */
export const MEMORY_IMPORT_MODULE = 'tenement';
export const MEMORY_IMPORT_NAME = 'memory';
/** The custom section that carries the memory's limits: [initial pages, maximum pages] as LEB128. */
export const MEMORY_SHAPE_SECTION = 'tenement:memory';

const SECTION_CUSTOM = 0;
const SECTION_TYPE = 1;
const SECTION_IMPORT = 2;
const SECTION_MEMORY = 5;
const IMPORT_KIND_MEMORY = 2;
const LIMITS_HAS_MAX = 1;

const decoder = new TextDecoder();

function customName(bytes: Uint8Array, section: Section): string {
  const reader = new Reader(bytes, section.bodyStart);
  const length = reader.u32();
  return decoder.decode(bytes.subarray(reader.pos, reader.pos + length));
}

/**
 * The module with its one defined memory turned into the import `tenement.memory` of the same limits, or the
 * bytes unchanged when it does not define exactly one memory with a maximum (run as before, in a memory of its
 * own). Expects a module capMemory has already capped (it refuses imported, shared and 64-bit memories).
 */
export function importOwnMemory(bytes: Uint8Array): Uint8Array {
  const all = sectionsOf(bytes);
  const memory = all.find((s) => s.id === SECTION_MEMORY);
  if (!memory) return bytes;
  const reader = new Reader(bytes, memory.bodyStart);
  if (reader.u32() !== 1) return bytes;
  const flags = reader.byte();
  if (flags !== LIMITS_HAS_MAX) return bytes;
  const initial = reader.u32();
  const maximum = reader.u32();

  const entry = [...name(MEMORY_IMPORT_MODULE), ...name(MEMORY_IMPORT_NAME), IMPORT_KIND_MEMORY, LIMITS_HAS_MAX, ...leb(initial), ...leb(maximum)];
  const imports = all.find((s) => s.id === SECTION_IMPORT);
  // Appended to the import section it has (count + 1), or in one of its own.
  let importBody: number[] = [...leb(1), ...entry];
  if (imports) {
    const body = new Reader(bytes, imports.bodyStart);
    const count = body.u32();
    importBody = [...leb(count + 1), ...bytes.subarray(body.pos, imports.end), ...entry];
  }
  const importSection = Uint8Array.from(section(SECTION_IMPORT, importBody));

  const parts: Uint8Array[] = [bytes.subarray(0, 8)];
  let placed = false;
  for (const s of all) {
    // The import section goes where it stood, or (new) before the first known section other than types.
    if (!placed && (s === imports || (!imports && s.id !== SECTION_CUSTOM && s.id !== SECTION_TYPE))) {
      parts.push(importSection);
      placed = true;
      if (s === imports) continue;
    }
    if (s === memory) continue;
    // A section of this name the module brought itself would be read as the limits: only ours is kept.
    if (s.id === SECTION_CUSTOM && customName(bytes, s) === MEMORY_SHAPE_SECTION) continue;
    parts.push(bytes.subarray(s.start, s.end));
  }
  if (!placed) parts.push(importSection);
  parts.push(Uint8Array.from(section(SECTION_CUSTOM, [...name(MEMORY_SHAPE_SECTION), ...leb(initial), ...leb(maximum)])));
  return joinParts(parts);
}

export interface MemoryShape {
  initial: number;
  maximum: number;
}

const shapes = new WeakMap<WebAssembly.Module, MemoryShape | null>();

/** The limits of the memory a rewritten module imports (null: it defines its own), read once per module. */
export function memoryShape(module: WebAssembly.Module): MemoryShape | null {
  let shape = shapes.get(module);
  if (shape !== undefined) return shape;
  shape = null;
  const [found] = WebAssembly.Module.customSections(module, MEMORY_SHAPE_SECTION);
  if (found) {
    const reader = new Reader(new Uint8Array(found), 0);
    shape = { initial: reader.u32(), maximum: reader.u32() };
  }
  shapes.set(module, shape);
  return shape;
}
