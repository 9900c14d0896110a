/**
 * Our WIT values as `wasmtime_component_val_t`s, both ways, following jco's JS shapes so the V8 and wasmtime
 * engines hand callers the same values: records as objects with camelCase fields, `list<u8>` as Uint8Array,
 * other lists and tuples as arrays, `option` as the value or undefined, `result` as `{ tag: 'ok' | 'err', val }`,
 * variants as `{ tag, val }`, enums as their case name.
 *
 * Three directions, three owners (ffi.ts):
 * - arguments of a call into the guest are borrowed by wasmtime: laid out in an Arena, native memory this
 *   module owns and reuses, so a call allocates nothing in wasmtime and frees nothing afterwards;
 * - results of a call, and arguments of a host function, are wasmtime's: read (copied out) here; a call's
 *   results are then freed with `wasmtime_component_val_delete`;
 * - results of a host function are freed by wasmtime: built with wasmtime's own allocators.
 *
 * The C API has no byte-list fast path: a `list<u8>` travels as one 32-byte value per byte (and wasmtime holds
 * its own `Val` per byte while it copies), which is what bounds bodies on this engine (run.ts).
 */
import { Kind, NAME_SIZE, RECORD_ENTRY_SIZE, VAL_OF, VAL_SIZE, koffi, type ComponentApi, type Ptr } from './ffi.ts';
import { readNative, writeNative } from './native.ts';

export type WitType =
  | 'bool'
  | 'u8'
  | 'u16'
  | 'u32'
  | 'u64'
  | 's32'
  | 's64'
  | 'f64'
  | 'string'
  /** list<u8>, as a Uint8Array. */
  | 'bytes'
  | { list: WitType }
  | { tuple: WitType[] }
  /** Field names as the WIT spells them (kebab-case); JS objects use the camelCase form, as jco does. */
  | { record: [string, WitType][] }
  | { option: WitType }
  | { result: [WitType | null, WitType | null] }
  | { variant: [string, WitType | null][] }
  | { enum: string[] };

/**
 * Bodies on this engine, both ways. The C API moves a `list<u8>` as one value per byte (above), and wasmtime
 * bounds what a guest hands the host per call (its "hostcall fuel", 128 MiB of its own values, not settable
 * through the C API in 49.0.0): a response body past ~2.6 MiB fails there. Request bodies are held to the same
 * (the wasm tier answers 413 past it).
 */
export const MAX_WASMTIME_BODY_BYTES = 2 * 1024 * 1024;

const camel = (name: string): string => name.replace(/-([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
const camelNames = new Map<string, string>();
function jsName(name: string): string {
  let out = camelNames.get(name);
  if (out === undefined) {
    out = camel(name);
    if (camelNames.size < 10_000) camelNames.set(name, out);
  }
  return out;
}

function fail(what: string): never {
  throw new TypeError(`cannot pass the value to the component: ${what}`);
}

class ArenaFull extends Error {}

/**
 * Native memory for one call's arguments: values laid out by a bump allocator, pointers between them absolute.
 * Grows (and starts over) when a call's arguments do not fit; shrinks back after an unusually big call.
 */
export class Arena {
  private base: Ptr = 0n;
  private size = 0;
  private view: Buffer = Buffer.alloc(0);
  private used = 0;

  constructor(private readonly initial = 64 * 1024) {
    this.reserve(initial);
  }

  private reserve(size: number): void {
    if (this.base) koffi.free(this.base);
    this.base = koffi.alloc('uint8_t', size) as Ptr;
    this.size = size;
    this.view = Buffer.from(koffi.view(this.base, size));
  }

  /**
   * Lays `values` out as an array of vals and returns its address (valid until the next lower()). Throws a
   * TypeError when a value does not fit its type.
   */
  lower(values: unknown[], types: WitType[]): Ptr {
    if (values.length !== types.length) fail(`expected ${types.length} arguments, got ${values.length}`);
    for (;;) {
      this.used = 0;
      try {
        const at = this.take(VAL_SIZE * values.length);
        for (let i = 0; i < values.length; i++) this.write(at + i * VAL_SIZE, values[i], types[i]!);
        return this.base + BigInt(at);
      } catch (error) {
        if (!(error instanceof ArenaFull)) throw error;
        this.reserve(this.size * 2);
      }
    }
  }

  /** After a call: memory grown for a big argument is given back. */
  settle(): void {
    if (this.size > this.initial * 64) this.reserve(this.initial);
  }

  close(): void {
    if (this.base) koffi.free(this.base);
    this.base = 0n;
    this.size = 0;
  }

  private take(bytes: number): number {
    const at = this.used;
    const end = at + ((bytes + 7) & ~7);
    if (end > this.size) throw new ArenaFull();
    this.used = end;
    return at;
  }

  private address(offset: number): bigint {
    return this.base + BigInt(offset);
  }

  private name(at: number, text: string): void {
    const length = Buffer.byteLength(text);
    const data = length > 0 ? this.take(length) : 0;
    if (length > 0) this.view.write(text, data, length, 'utf8');
    this.view.writeBigUInt64LE(BigInt(length), at);
    this.view.writeBigUInt64LE(length > 0 ? this.address(data) : 0n, at + 8);
  }

  /** Writes one val at `at` (its 32 bytes already taken). */
  private write(at: number, value: unknown, type: WitType): void {
    const v = this.view;
    v.fill(0, at, at + VAL_SIZE);
    const of = at + VAL_OF;
    if (typeof type === 'string') {
      switch (type) {
        case 'bool':
          if (typeof value !== 'boolean') fail('expected a boolean');
          v[at] = Kind.BOOL;
          v[of] = value ? 1 : 0;
          return;
        case 'u8':
        case 'u16':
        case 'u32':
        case 's32': {
          const bits = type === 'u8' ? 8 : type === 'u16' ? 16 : 32;
          const signed = type === 's32';
          const min = signed ? -(2 ** 31) : 0;
          const max = signed ? 2 ** 31 - 1 : 2 ** bits - 1;
          if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) fail(`expected an integer from ${min} to ${max}`);
          v[at] = type === 'u8' ? Kind.U8 : type === 'u16' ? Kind.U16 : type === 'u32' ? Kind.U32 : Kind.S32;
          if (signed) v.writeInt32LE(value, of);
          else v.writeUInt32LE(value, of); // little-endian: the narrower fields read their low bytes
          return;
        }
        case 'u64':
        case 's64': {
          const big = typeof value === 'bigint' ? value : typeof value === 'number' && Number.isSafeInteger(value) ? BigInt(value) : fail('expected an integer');
          v[at] = type === 'u64' ? Kind.U64 : Kind.S64;
          if (type === 'u64') {
            if (big < 0n || big >= 1n << 64n) fail('expected an unsigned 64-bit integer');
            v.writeBigUInt64LE(big, of);
          } else {
            if (big < -(1n << 63n) || big >= 1n << 63n) fail('expected a signed 64-bit integer');
            v.writeBigInt64LE(big, of);
          }
          return;
        }
        case 'f64':
          if (typeof value !== 'number') fail('expected a number');
          v[at] = Kind.F64;
          v.writeDoubleLE(value, of);
          return;
        case 'string':
          if (typeof value !== 'string') fail('expected a string');
          v[at] = Kind.STRING;
          // Buffer's UTF-8 replaces lone surrogates: wasmtime reads the bytes as strict UTF-8.
          this.name(of, value);
          return;
        case 'bytes': {
          if (!(value instanceof Uint8Array)) fail('expected bytes (a Uint8Array)');
          v[at] = Kind.LIST;
          const items = value.length > 0 ? this.take(VAL_SIZE * value.length) : 0;
          for (let i = 0; i < value.length; i++) {
            const item = items + i * VAL_SIZE;
            v[item] = Kind.U8;
            v[item + VAL_OF] = value[i]!;
          }
          v.writeBigUInt64LE(BigInt(value.length), of);
          v.writeBigUInt64LE(value.length > 0 ? this.address(items) : 0n, of + 8);
          return;
        }
      }
    }
    if ('list' in type || 'tuple' in type) {
      if (!Array.isArray(value)) fail('expected an array');
      const types = 'list' in type ? null : type.tuple;
      if (types && value.length !== types.length) fail(`expected a tuple of ${types.length}`);
      v[at] = types ? Kind.TUPLE : Kind.LIST;
      const items = value.length > 0 ? this.take(VAL_SIZE * value.length) : 0;
      for (let i = 0; i < value.length; i++) this.write(items + i * VAL_SIZE, value[i], types ? types[i]! : (type as { list: WitType }).list);
      this.view.writeBigUInt64LE(BigInt(value.length), of);
      this.view.writeBigUInt64LE(value.length > 0 ? this.address(items) : 0n, of + 8);
      return;
    }
    if ('record' in type) {
      if (!value || typeof value !== 'object') fail('expected a record (an object)');
      const fields = type.record;
      v[at] = Kind.RECORD;
      const entries = this.take(RECORD_ENTRY_SIZE * fields.length);
      for (let i = 0; i < fields.length; i++) {
        const [name, fieldType] = fields[i]!;
        const entry = entries + i * RECORD_ENTRY_SIZE;
        this.name(entry, name);
        const key = jsName(name);
        this.write(entry + NAME_SIZE, Object.hasOwn(value, key) ? (value as Record<string, unknown>)[key] : undefined, fieldType);
      }
      this.view.writeBigUInt64LE(BigInt(fields.length), of);
      this.view.writeBigUInt64LE(this.address(entries), of + 8);
      return;
    }
    if ('option' in type) {
      v[at] = Kind.OPTION;
      if (value === undefined || value === null) return; // NULL: none
      const inner = this.take(VAL_SIZE);
      this.write(inner, value, type.option);
      this.view.writeBigUInt64LE(this.address(inner), of);
      return;
    }
    if ('result' in type) {
      const { tag, val } = (value ?? {}) as { tag?: unknown; val?: unknown };
      if (tag !== 'ok' && tag !== 'err') fail("expected a result ({ tag: 'ok' | 'err', val })");
      v[at] = Kind.RESULT;
      v[of] = tag === 'ok' ? 1 : 0;
      const payload = type.result[tag === 'ok' ? 0 : 1];
      if (payload === null) return;
      const inner = this.take(VAL_SIZE);
      this.write(inner, val, payload);
      this.view.writeBigUInt64LE(this.address(inner), of + 8);
      return;
    }
    if ('variant' in type) {
      const { tag, val } = (value ?? {}) as { tag?: unknown; val?: unknown };
      const found = type.variant.find(([name]) => jsName(name) === tag || name === tag);
      if (!found) fail(`expected one of the cases ${type.variant.map(([name]) => name).join(', ')}`);
      v[at] = Kind.VARIANT;
      this.name(of, found[0]);
      if (found[1] === null) return;
      const inner = this.take(VAL_SIZE);
      this.write(inner, val, found[1]);
      this.view.writeBigUInt64LE(this.address(inner), of + NAME_SIZE);
      return;
    }
    if ('enum' in type) {
      const found = type.enum.find((name) => name === value || jsName(name) === value);
      if (!found) fail(`expected one of ${type.enum.join(', ')}`);
      v[at] = Kind.ENUM;
      this.name(of, found);
      return;
    }
    fail('unknown type');
  }
}

/** Native memory of `bytes` bytes at `ptr`, copied out. */
const at = readNative;

function nameAt(view: Buffer, offset: number): string {
  const size = Number(view.readBigUInt64LE(offset));
  if (size === 0) return '';
  return at(view.readBigUInt64LE(offset + 8), size).toString('utf8');
}

/**
 * Reads the val at `offset` of `view` (memory wasmtime owns) into a JS value. With a type, a `list<u8>` becomes
 * a Uint8Array and fields and cases get jco's names; without one the value's own kinds decide.
 */
export function lift(view: Buffer, offset: number, type?: WitType | null): unknown {
  const kind = view[offset]!;
  const of = offset + VAL_OF;
  switch (kind) {
    case Kind.BOOL:
      return view[of] !== 0;
    case Kind.S8:
      return view.readInt8(of);
    case Kind.U8:
      return view[of];
    case Kind.S16:
      return view.readInt16LE(of);
    case Kind.U16:
      return view.readUInt16LE(of);
    case Kind.S32:
      return view.readInt32LE(of);
    case Kind.U32:
      return view.readUInt32LE(of);
    case Kind.S64:
      return view.readBigInt64LE(of);
    case Kind.U64:
      return view.readBigUInt64LE(of);
    case Kind.F32:
      return view.readFloatLE(of);
    case Kind.F64:
      return view.readDoubleLE(of);
    case Kind.CHAR:
      return String.fromCodePoint(view.readUInt32LE(of));
    case Kind.STRING:
    case Kind.ENUM:
      return nameAt(view, of);
    case Kind.LIST:
    case Kind.TUPLE: {
      const size = Number(view.readBigUInt64LE(of));
      const wantsBytes = type === 'bytes';
      if (size === 0) return wantsBytes ? new Uint8Array(0) : [];
      const items = at(view.readBigUInt64LE(of + 8), size * VAL_SIZE);
      if (wantsBytes || (type === undefined && items[0] === Kind.U8)) {
        const out = new Uint8Array(size);
        for (let i = 0; i < size; i++) {
          if (items[i * VAL_SIZE] !== Kind.U8) throw new TypeError('expected a list of u8');
          out[i] = items[i * VAL_SIZE + VAL_OF]!;
        }
        return out;
      }
      const out: unknown[] = new Array(size);
      const element = type && typeof type === 'object' && 'list' in type ? type.list : undefined;
      const tuple = type && typeof type === 'object' && 'tuple' in type ? type.tuple : undefined;
      for (let i = 0; i < size; i++) out[i] = lift(items, i * VAL_SIZE, tuple ? tuple[i] : element);
      return out;
    }
    case Kind.RECORD: {
      const size = Number(view.readBigUInt64LE(of));
      const fields = type && typeof type === 'object' && 'record' in type ? type.record : undefined;
      const out: Record<string, unknown> = {};
      if (size === 0) return out;
      const entries = at(view.readBigUInt64LE(of + 8), size * RECORD_ENTRY_SIZE);
      for (let i = 0; i < size; i++) {
        const name = nameAt(entries, i * RECORD_ENTRY_SIZE);
        const fieldType = fields?.find(([field]) => field === name)?.[1];
        // defineProperty: a field named __proto__ is a field, not the object's prototype.
        Object.defineProperty(out, jsName(name), { value: lift(entries, i * RECORD_ENTRY_SIZE + NAME_SIZE, fieldType), enumerable: true, writable: true, configurable: true });
      }
      return out;
    }
    case Kind.OPTION: {
      const inner = view.readBigUInt64LE(of);
      if (inner === 0n) return undefined;
      return lift(at(inner, VAL_SIZE), 0, type && typeof type === 'object' && 'option' in type ? type.option : undefined);
    }
    case Kind.RESULT: {
      const ok = view[of] !== 0;
      const inner = view.readBigUInt64LE(of + 8);
      const payload = type && typeof type === 'object' && 'result' in type ? type.result[ok ? 0 : 1] : undefined;
      return { tag: ok ? 'ok' : 'err', val: inner === 0n ? undefined : lift(at(inner, VAL_SIZE), 0, payload) };
    }
    case Kind.VARIANT: {
      const name = nameAt(view, of);
      const inner = view.readBigUInt64LE(of + NAME_SIZE);
      const cases = type && typeof type === 'object' && 'variant' in type ? type.variant : undefined;
      const payload = cases?.find(([c]) => c === name)?.[1];
      // jco's shape: the case name as the WIT spells it, and no `val` key for a case without a payload.
      return inner === 0n ? { tag: name } : { tag: name, val: lift(at(inner, VAL_SIZE), 0, payload ?? undefined) };
    }
    default:
      throw new TypeError(`the component passed a value of kind ${kind}, which Tenement's worlds do not use`);
  }
}

/** Reads `count` vals at `ptr` (memory wasmtime owns). */
export function liftAll(ptr: Ptr, count: number, types: (WitType | null | undefined)[]): unknown[] {
  if (count === 0) return [];
  const view = at(ptr, count * VAL_SIZE);
  const out: unknown[] = new Array(count);
  for (let i = 0; i < count; i++) out[i] = lift(view, i * VAL_SIZE, types[i] ?? undefined);
  return out;
}

/**
 * Writes a host function's result into the val at `slot` (memory wasmtime owns and will free), allocating
 * everything it points to with wasmtime's allocators. Throws a TypeError when the value does not fit its type
 * (nothing is left allocated then, and the slot is untouched).
 */
export function lowerOwned(api: ComponentApi, slot: Ptr, value: unknown, type: WitType): void {
  writeNative(slot, ownedVal(api, value, type));
}

/** A val's 32 bytes, built in JS memory; what it points to is wasmtime's and belongs to whoever takes the val. */
function ownedVal(api: ComponentApi, value: unknown, type: WitType): Buffer {
  const v = Buffer.alloc(VAL_SIZE);
  if (typeof type === 'string') {
    switch (type) {
      case 'bool':
        v[0] = Kind.BOOL;
        v[VAL_OF] = value ? 1 : 0;
        return v;
      case 'u32':
        if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffffffff) fail('expected a u32');
        v[0] = Kind.U32;
        v.writeUInt32LE(value, VAL_OF);
        return v;
      case 'f64':
        if (typeof value !== 'number') fail('expected a number');
        v[0] = Kind.F64;
        v.writeDoubleLE(value, VAL_OF);
        return v;
      case 'string': {
        if (typeof value !== 'string') fail('expected a string');
        const bytes = Buffer.from(value, 'utf8');
        const vec = Buffer.alloc(NAME_SIZE);
        api.wasm_byte_vec_new(vec, bytes.length, bytes.length > 0 ? bytes : null);
        v[0] = Kind.STRING;
        vec.copy(v, VAL_OF);
        return v;
      }
      case 'bytes': {
        if (!(value instanceof Uint8Array)) fail('expected bytes');
        const items = Buffer.alloc(value.length * VAL_SIZE);
        for (let i = 0; i < value.length; i++) {
          items[i * VAL_SIZE] = Kind.U8;
          items[i * VAL_SIZE + VAL_OF] = value[i]!;
        }
        return ownedList(api, v, items, value.length);
      }
      default:
        fail(`results of type ${type} are not used by Tenement's imports`);
    }
  }
  if ('list' in type) {
    if (!Array.isArray(value)) fail('expected an array');
    const items = Buffer.alloc(value.length * VAL_SIZE); // zeros: each a valid `false` until set
    try {
      for (let i = 0; i < value.length; i++) ownedVal(api, value[i], type.list).copy(items, i * VAL_SIZE);
    } catch (error) {
      // The elements made so far own memory: handed to wasmtime as a list, and freed with it.
      const list = ownedList(api, Buffer.alloc(VAL_SIZE), items, value.length);
      api.wasmtime_component_val_delete(list);
      throw error;
    }
    return ownedList(api, v, items, value.length);
  }
  if ('option' in type || 'result' in type) {
    let payload: WitType | null;
    let inner: unknown;
    if ('option' in type) {
      v[0] = Kind.OPTION;
      if (value === undefined || value === null) return v; // NULL: none
      payload = type.option;
      inner = value;
    } else {
      const { tag, val } = (value ?? {}) as { tag?: unknown; val?: unknown };
      if (tag !== 'ok' && tag !== 'err') fail('expected a result');
      v[0] = Kind.RESULT;
      v[VAL_OF] = tag === 'ok' ? 1 : 0;
      payload = type.result[tag === 'ok' ? 0 : 1];
      if (payload === null) return v;
      inner = val;
    }
    // Moved into a box of wasmtime's (wasmtime_component_val_new takes the content of the val it is given).
    const boxed = api.wasmtime_component_val_new(ownedVal(api, inner, payload)) as Ptr;
    v.writeBigUInt64LE(boxed, 'option' in type ? VAL_OF : VAL_OF + 8);
    return v;
  }
  fail('unsupported result type');
}

/** `v` made a list of `count` vals whose bytes are `items`, in a vector wasmtime allocated. */
function ownedList(api: ComponentApi, v: Buffer, items: Buffer, count: number): Buffer {
  const vec = Buffer.alloc(16);
  api.wasmtime_component_vallist_new_uninit(vec, count);
  if (count > 0) writeNative(vec.readBigUInt64LE(8), items);
  v[0] = Kind.LIST;
  vec.copy(v, VAL_OF);
  return v;
}
