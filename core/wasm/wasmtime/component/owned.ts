/** A host function's results, built with wasmtime's own allocators: wasmtime frees them (values.ts). */
import { Kind, NAME_SIZE, VAL_OF, VAL_SIZE, type ComponentApi, type Ptr } from './ffi.ts';
import { writeNative } from './native.ts';
import { fail, type WitType } from './values.ts';

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
