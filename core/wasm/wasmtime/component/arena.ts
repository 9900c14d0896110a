/** A call's arguments, lowered into native memory this module owns (values.ts: who owns what). */
import { Kind, NAME_SIZE, RECORD_ENTRY_SIZE, VAL_OF, VAL_SIZE, koffi, type Ptr } from './ffi.ts';
import { fail, jsName, type WitType } from './values.ts';

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
