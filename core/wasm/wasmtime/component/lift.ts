/** Values wasmtime owns (a call's results, a host function's arguments), read into JS values (values.ts). */
import { Kind, NAME_SIZE, RECORD_ENTRY_SIZE, VAL_OF, VAL_SIZE, type Ptr } from './ffi.ts';
import { readNative } from './native.ts';
import { jsName, type WitType } from './values.ts';

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
