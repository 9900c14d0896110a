/**
 * In the worker: the handler world's `handle` and Tenement's hot host imports with the canonical ABI written out
 * for their one signature each, without jco's task machinery (lean-glue.ts opens the way in the glue). Same
 * values in and out as jco's own lowering and lifting (UTF-8 strings, an empty string at pointer 1 without an
 * allocation, lists allocated with the guest's realloc, a list's bytes copied out), checked by
 * test/e2e/wasm-component-lean.test.ts against jco's path.
 */
import type { WasmHttpRequest } from './types.ts';

type HostFunction = (...args: never[]) => unknown;
type Realloc = (old: number, oldSize: number, align: number, size: number) => number;
type MemoryOf = () => WebAssembly.Memory;

/** What lean-glue.ts exposes of the glue: the core `handle` export and the guest's memory, realloc and post-return. */
export interface LeanHandleCore {
  call(...flat: number[]): number;
  memory(): WebAssembly.Memory;
  realloc: Realloc;
  postReturn(ret: number): void;
  /** Marks the component trapped, as jco does when a trap leaves `handle` (and words a core trap its way). */
  trapped(error: unknown): void;
}

/** What the glue asks for: a lean call for `key` (`interface#function`), or null to keep jco's. */
export type LeanImportMaker = (key: string, memory: MemoryOf | null, realloc: (() => Realloc) | null) => ((...flat: number[]) => unknown) | null;

const encoder = new TextEncoder();
// Not fatal: jco's lifting replaces malformed UTF-8 the same way.
const decoder = new TextDecoder();

function readString(memory: WebAssembly.Memory, ptr: number, len: number): string {
  return decoder.decode(new Uint8Array(memory.buffer, ptr, len));
}

/** UTF-8 bytes of `text` (a lone surrogate takes the 3 of its replacement character, as TextEncoder writes it). */
function utf8Length(text: string): number {
  let length = text.length;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) continue;
    if (unit < 0x800) length += 1;
    else if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      length += 2; // four bytes for the pair's two units
      i++;
    } else length += 2;
  }
  return length;
}

/**
 * A string into the guest's memory: [ptr, len]. As jco does it: the exact size allocated first (some adapters
 * cannot shrink an allocation), the text encoded straight into it; an empty string is pointer 1, nothing allocated.
 */
function writeString(text: string, memory: WebAssembly.Memory, realloc: Realloc): [number, number] {
  if (typeof text !== 'string') throw new TypeError(`expected a string, received [${typeof text}]`);
  if (text.length === 0) return [1, 0];
  const length = utf8Length(text);
  const ptr = realloc(0, 0, 1, length);
  const { read, written } = encoder.encodeInto(text, new Uint8Array(memory.buffer, ptr, length));
  if (read !== text.length || written !== length) throw new Error('failed to encode whole string');
  return [ptr, length];
}

function writeBytes(bytes: Uint8Array, memory: WebAssembly.Memory, realloc: Realloc): number {
  const ptr = realloc(0, 0, 1, bytes.length);
  new Uint8Array(memory.buffer, ptr, bytes.length).set(bytes);
  return ptr;
}

/** A `list<u8>` or `string` result written where the guest asked (`retptr`: pointer then length). */
function writeResult(memory: WebAssembly.Memory, retptr: number, ptr: number, len: number): void {
  const view = new DataView(memory.buffer);
  view.setUint32(retptr, ptr, true);
  view.setUint32(retptr + 4, len, true);
}

function bytesOf(value: unknown, what: string): Uint8Array {
  if (value instanceof Uint8Array) return value;
  throw new TypeError(`${what} must return bytes`);
}

/** Lean imports over the host's functions, by interface name (unversioned) then function name. */
export function leanImportMaker(host: ReadonlyMap<string, Readonly<Record<string, HostFunction>>>): LeanImportMaker {
  const fn = (iface: string, name: string): HostFunction | null => {
    const functions = host.get(iface);
    return functions && Object.hasOwn(functions, name) && typeof functions[name] === 'function' ? functions[name]! : null;
  };
  return (key, memoryOf, reallocOf) => {
    const [iface = '', name = ''] = key.split('#');
    const host = fn(iface, name);
    if (!host) return null;
    switch (key) {
      case 'tenement:http/runtime#now': {
        const now = host as () => number;
        return () => +now();
      }
      case 'tenement:http/log#write': {
        if (!memoryOf) return null;
        const write = host as (to: string, line: string) => void;
        return (to: number, ptr: number, len: number) => {
          if (to !== 0 && to !== 1) throw new TypeError('invalid discriminant specified for Channel');
          write(to === 0 ? 'stdout' : 'stderr', readString(memoryOf(), ptr, len));
        };
      }
      case 'tenement:http/runtime#utf8Encode': {
        if (!memoryOf || !reallocOf) return null;
        const utf8Encode = host as (text: string) => unknown;
        return (ptr: number, len: number, retptr: number) => {
          const bytes = bytesOf(utf8Encode(readString(memoryOf(), ptr, len)), 'utf8-encode');
          const at = writeBytes(bytes, memoryOf(), reallocOf());
          writeResult(memoryOf(), retptr, at, bytes.length);
        };
      }
      case 'tenement:http/runtime#utf8Decode': {
        if (!memoryOf || !reallocOf) return null;
        const utf8Decode = host as (bytes: Uint8Array) => unknown;
        return (ptr: number, len: number, retptr: number) => {
          const text = utf8Decode(new Uint8Array(memoryOf().buffer.slice(ptr, ptr + len)));
          const [at, written] = writeString(text as string, memoryOf(), reallocOf());
          writeResult(memoryOf(), retptr, at, written);
        };
      }
      case 'tenement:http/runtime#randomBytes': {
        if (!memoryOf || !reallocOf) return null;
        const randomBytes = host as (len: number) => unknown;
        return (len: number, retptr: number) => {
          const bytes = bytesOf(randomBytes(len >>> 0), 'random-bytes');
          const at = writeBytes(bytes, memoryOf(), reallocOf());
          writeResult(memoryOf(), retptr, at, bytes.length);
        };
      }
      default:
        return null;
    }
  };
}

/** The handler world's `handle(request) -> response` through the core export (lean-glue.ts checked its signature). */
export function leanHandle(core: LeanHandleCore): (request: WasmHttpRequest) => unknown {
  return (request) => {
    const { method, path, query, headers, body } = request;
    const memory = core.memory();
    const realloc = core.realloc;
    const [methodPtr, methodLen] = writeString(method, memory, realloc);
    const [pathPtr, pathLen] = writeString(path, memory, realloc);
    const [queryPtr, queryLen] = writeString(query, memory, realloc);
    const list = realloc(0, 0, 4, headers.length * 16);
    const entries: number[] = [];
    for (const [name, value] of headers) entries.push(...writeString(name, memory, realloc), ...writeString(value, memory, realloc));
    const bodyPtr = writeBytes(body, memory, realloc);
    // After every allocation: a realloc may have grown the memory (a new buffer).
    const entryView = new DataView(memory.buffer);
    for (let i = 0; i < entries.length; i++) entryView.setUint32(list + i * 4, entries[i]!, true);
    let ret: number;
    try {
      ret = core.call(methodPtr, methodLen, pathPtr, pathLen, queryPtr, queryLen, list, headers.length, bodyPtr, body.length);
    } catch (error) {
      core.trapped(error);
      throw error;
    }

    const view = new DataView(memory.buffer);
    const status = view.getUint16(ret, true);
    const listPtr = view.getUint32(ret + 4, true);
    const listLen = view.getUint32(ret + 8, true);
    if (listPtr % 4 !== 0) throw new TypeError(`list pointer [${listPtr}] is not aligned to 4`);
    const pairs: [string, string][] = [];
    for (let i = 0; i < listLen; i++) {
      const base = listPtr + i * 16;
      pairs.push([
        readString(memory, view.getUint32(base, true), view.getUint32(base + 4, true)),
        readString(memory, view.getUint32(base + 8, true), view.getUint32(base + 12, true)),
      ]);
    }
    const bodyAt = view.getUint32(ret + 12, true);
    const bodyLen = view.getUint32(ret + 16, true);
    const answer = { status, headers: pairs, body: new Uint8Array(memory.buffer.slice(bodyAt, bodyAt + bodyLen)) };
    core.postReturn(ret);
    return answer;
  };
}
