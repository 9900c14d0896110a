/**
 * Writes a maximum into every memory a core module defines, so the guest's `memory.grow` fails (returns -1,
 * and its allocator traps or reports ENOMEM) at the cap. Toolchains (clang wasm32-wasi, QuickJS, SpiderMonkey)
 * declare no maximum, the JS API cannot set one after compilation, and worker resourceLimits do not cover wasm
 * memory: rewriting the binary's memory section is the only per-module cap V8 offers.
 */

export const WASM_PAGE_BYTES = 65_536;

/** Unsigned LEB128. */
export function leb(value: number): number[] {
  const out: number[] = [];
  let n = value >>> 0;
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

const encoder = new TextEncoder();

/** A name as the binary holds it: its UTF-8 length, then its bytes. */
export function name(text: string): number[] {
  const bytes = encoder.encode(text);
  return [...leb(bytes.length), ...bytes];
}

/** A section: its id, its body's length, its body. */
export function section(id: number, body: readonly number[] | Uint8Array): number[] {
  return [id, ...leb(body.length), ...body];
}

/** The parts of a rewritten module, joined into one binary. */
export function joinParts(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** A reader over the binary that fails with a clear message instead of reading past the end. */
export class Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    start: number,
  ) {
    this.pos = start;
  }

  byte(): number {
    if (this.pos >= this.bytes.length) throw new Error('truncated wasm binary');
    return this.bytes[this.pos++]!;
  }

  u32(): number {
    let result = 0;
    let shift = 0;
    let byte: number;
    do {
      byte = this.byte();
      result |= (byte & 0x7f) << shift;
      shift += 7;
    } while (byte & 0x80 && shift < 35);
    return result >>> 0;
  }
}

/** A section of a module: where it starts (its id byte), where its body starts, and where it ends. */
export interface Section {
  id: number;
  start: number;
  bodyStart: number;
  end: number;
}

/** The module's sections in order (after the 8-byte preamble). */
export function sectionsOf(bytes: Uint8Array): Section[] {
  const out: Section[] = [];
  let pos = 8;
  while (pos < bytes.length) {
    const reader = new Reader(bytes, pos);
    const id = reader.byte();
    const size = reader.u32();
    const end = reader.pos + size;
    if (end > bytes.length) throw new Error('truncated wasm binary');
    out.push({ id, start: pos, bodyStart: reader.pos, end });
    pos = end;
  }
  return out;
}

const SECTION_IMPORT = 2;
const SECTION_MEMORY = 5;
const IMPORT_KIND_MEMORY = 2;
const LIMITS_HAS_MAX = 1;
const LIMITS_SHARED = 2;
const LIMITS_MEMORY64 = 4;

function skipLimits(reader: Reader): void {
  const flags = reader.byte();
  reader.u32();
  if (flags & LIMITS_HAS_MAX) reader.u32();
}

export function skipImportDescriptor(reader: Reader, kind: number): void {
  switch (kind) {
    case 0: // function: type index
      reader.u32();
      return;
    case 1: // table: reftype + limits
      reader.byte();
      skipLimits(reader);
      return;
    case 2: // memory
      skipLimits(reader);
      return;
    case 3: // global: valtype + mutability
      reader.byte();
      reader.byte();
      return;
    case 4: // tag: attribute + type index
      reader.byte();
      reader.u32();
      return;
    default:
      throw new Error(`unknown import kind ${kind}`);
  }
}

function importsMemory(bytes: Uint8Array, start: number, end: number): boolean {
  const reader = new Reader(bytes, start);
  const count = reader.u32();
  for (let i = 0; i < count && reader.pos < end; i++) {
    const moduleNameLength = reader.u32();
    reader.pos += moduleNameLength;
    const fieldNameLength = reader.u32();
    reader.pos += fieldNameLength;
    const kind = reader.byte();
    if (kind === IMPORT_KIND_MEMORY) return true;
    skipImportDescriptor(reader, kind);
  }
  return false;
}

/**
 * Returns the module with every defined memory's maximum set to at most `capPages` (64 KiB pages).
 * Refuses memory64 and shared memories, a memory whose initial size is already over the cap, and modules that
 * import their memory (the host would have to provide it, and nothing here does).
 */
export function capMemory(input: Uint8Array, capPages: number): Uint8Array {
  const bytes = input;
  let pos = 8;
  while (pos < bytes.length) {
    const reader = new Reader(bytes, pos);
    const start = pos;
    const id = reader.byte();
    const size = reader.u32();
    const bodyStart = reader.pos;
    const end = bodyStart + size;
    if (end > bytes.length) throw new Error('truncated wasm binary');
    if (id === SECTION_IMPORT && importsMemory(bytes, bodyStart, end)) {
      throw new Error('the module imports its memory; only modules that define their own memory are supported');
    }
    if (id === SECTION_MEMORY) {
      const count = reader.u32();
      const out = leb(count);
      for (let i = 0; i < count; i++) {
        const flags = reader.byte();
        if (flags & LIMITS_MEMORY64) throw new Error('memory64 is not supported');
        if (flags & LIMITS_SHARED) throw new Error('shared memories are not supported');
        const min = reader.u32();
        const max = flags & LIMITS_HAS_MAX ? reader.u32() : Infinity;
        if (min > capPages) {
          throw new Error(`the module needs ${min} pages (${min * 64} KiB) of memory at start, over its cap of ${capPages} pages`);
        }
        out.push(flags | LIMITS_HAS_MAX, ...leb(min), ...leb(Math.min(max, capPages)));
      }
      const section = [SECTION_MEMORY, ...leb(out.length), ...out];
      const result = new Uint8Array(start + section.length + (bytes.length - end));
      result.set(bytes.subarray(0, start), 0);
      result.set(section, start);
      result.set(bytes.subarray(end), start + section.length);
      return result;
    }
    pos = end;
  }
  return bytes;
}

const SECTION_START = 8;

/**
 * Whether the module has a start function, which instantiating runs. Such a guest is never instantiated ahead of
 * its request (wasmtime/prepared.ts): its code would run outside any request, its deadline and its WASI context.
 */
export function hasStartFunction(bytes: Uint8Array): boolean {
  let pos = 8;
  while (pos < bytes.length) {
    const reader = new Reader(bytes, pos);
    const id = reader.byte();
    const size = reader.u32();
    if (id === SECTION_START) return true;
    pos = reader.pos + size;
  }
  return false;
}
