/**
 * Bindings for exactly the component-model functions of wasmtime's C API that the engine uses, for the pinned
 * release (../library.ts). Signatures and layouts from wasmtime 49.0.0: the wheel's generated `_bindings.py`
 * (made from that release's crates/c-api/include/wasmtime/component/*.h) and its Rust sources (ownership).
 * Layouts, little-endian x86-64:
 *   wasm_name_t / wasm_byte_vec_t  { size_t size; uint8_t *data }                                 16 bytes
 *   wasmtime_component_val_t       { uint8_t kind; (pad 7) union of 24 bytes at 8 }               32 bytes
 *     string, enum: wasm_name_t; list, tuple: { size; val_t * }; record: { size; entry_t * };
 *     option: val_t * (NULL: none); result: { bool is_ok; (pad 7) val_t * } (val NULL: no payload);
 *     variant: { wasm_name_t discriminant; val_t * }
 *   wasmtime_component_valrecord_entry_t { wasm_name_t name; val_t val }                           48 bytes
 *   wasmtime_component_instance_t  { uint64_t store_id; uint32_t private }                        16 bytes
 *   wasmtime_component_func_t      { { uint64_t store_id; uint32_t p1 } (16); uint32_t p2; void *p3 } 32 bytes
 * Ownership (crates/c-api/src/component): `wasmtime_component_func_call` borrows its arguments (they are
 * copied into Rust values) and writes owned results the caller frees with `wasmtime_component_val_delete`; a
 * host function's arguments belong to wasmtime (read, never freed), and its results are freed by wasmtime, so
 * whatever they point to must come from wasmtime's own allocators (`wasm_byte_vec_new`, `..._vallist_new_uninit`,
 * `wasmtime_component_val_new`).
 */
import { koffi } from '../koffi-lazy.ts';

export type Ptr = bigint;

export const VAL_SIZE = 32;
export const VAL_OF = 8;
export const RECORD_ENTRY_SIZE = 48;
export const NAME_SIZE = 16;
export const COMPONENT_INSTANCE_SIZE = 16;
/** 32 in 49.0.0 (the trailing pointer went away later): a wrong size here is a heap overwrite. */
export const COMPONENT_FUNC_SIZE = 32;

/** wasmtime_component_valkind_t (component/val.h). */
export const Kind = {
  BOOL: 0,
  S8: 1,
  U8: 2,
  S16: 3,
  U16: 4,
  S32: 5,
  U32: 6,
  S64: 7,
  U64: 8,
  F32: 9,
  F64: 10,
  CHAR: 11,
  STRING: 12,
  LIST: 13,
  RECORD: 14,
  TUPLE: 15,
  VARIANT: 16,
  ENUM: 17,
  OPTION: 18,
  RESULT: 19,
  FLAGS: 20,
  RESOURCE: 21,
} as const;

function bind(file: string) {
  const lib = koffi.load(file);
  const f = (signature: string) => lib.func(signature);
  // wasmtime_component_func_callback_t: (data, context, type, args, nargs, results, nresults) -> error or NULL.
  const HostFunc = koffi.proto('void *tnm_component_host_func(void *data, void *context, void *type, void *args, size_t nargs, void *results, size_t nresults)');
  return {
    HostFunc,
    // errors and vectors (also in ../ffi.ts; bound here so this file stands alone)
    wasmtime_error_new: f('void *wasmtime_error_new(const char *message)'),
    wasmtime_error_message: f('void wasmtime_error_message(void *error, void *out)'),
    wasmtime_error_delete: f('void wasmtime_error_delete(void *error)'),
    wasm_byte_vec_new: f('void wasm_byte_vec_new(void *out, size_t size, const uint8_t *data)'),
    wasm_byte_vec_delete: f('void wasm_byte_vec_delete(void *vec)'),
    // components
    wasmtime_component_new: f('void *wasmtime_component_new(void *engine, const uint8_t *buf, size_t len, void *out)'),
    wasmtime_component_serialize: f('void *wasmtime_component_serialize(void *component, void *out)'),
    wasmtime_component_deserialize_file: f('void *wasmtime_component_deserialize_file(void *engine, const char *path, void *out)'),
    wasmtime_component_delete: f('void wasmtime_component_delete(void *component)'),
    wasmtime_component_type: f('void *wasmtime_component_type(void *component)'),
    wasmtime_component_type_delete: f('void wasmtime_component_type_delete(void *type)'),
    wasmtime_component_type_import_count: f('size_t wasmtime_component_type_import_count(void *type, void *engine)'),
    // 49.0.0 hands each item out as a boxed wasmtime_component_extern_t * (later releases: an item_t by value).
    wasmtime_component_type_import_nth: f('bool wasmtime_component_type_import_nth(void *type, void *engine, size_t nth, void *name_ret, void *name_len_ret, void *extern_ret)'),
    wasmtime_component_type_export_count: f('size_t wasmtime_component_type_export_count(void *type, void *engine)'),
    wasmtime_component_type_export_nth: f('bool wasmtime_component_type_export_nth(void *type, void *engine, size_t nth, void *name_ret, void *name_len_ret, void *extern_ret)'),
    wasmtime_component_extern_delete: f('void wasmtime_component_extern_delete(void *item)'),
    wasmtime_component_get_export_index: f('void *wasmtime_component_get_export_index(void *component, void *instance_export_index, const char *name, size_t len)'),
    wasmtime_component_export_index_delete: f('void wasmtime_component_export_index_delete(void *index)'),
    // linking and instances
    wasmtime_component_linker_new: f('void *wasmtime_component_linker_new(void *engine)'),
    wasmtime_component_linker_root: f('void *wasmtime_component_linker_root(void *linker)'),
    wasmtime_component_linker_instance_add_instance: f('void *wasmtime_component_linker_instance_add_instance(void *instance, const char *name, size_t len, void *out)'),
    wasmtime_component_linker_instance_add_func: f('void *wasmtime_component_linker_instance_add_func(void *instance, const char *name, size_t len, void *callback, void *data, void *finalizer)'),
    wasmtime_component_linker_instance_delete: f('void wasmtime_component_linker_instance_delete(void *instance)'),
    wasmtime_component_linker_instantiate: f('void *wasmtime_component_linker_instantiate(void *linker, void *context, void *component, void *out)'),
    wasmtime_component_linker_delete: f('void wasmtime_component_linker_delete(void *linker)'),
    wasmtime_component_instance_get_func: f('bool wasmtime_component_instance_get_func(void *instance, void *context, void *index, void *out)'),
    // calls and values
    wasmtime_component_func_call: f('void *wasmtime_component_func_call(void *func, void *context, void *args, size_t nargs, void *results, size_t nresults)'),
    // No effect since post-return became part of the call; kept so a call never leaves an instance unenterable.
    wasmtime_component_func_post_return: f('void *wasmtime_component_func_post_return(void *func, void *context)'),
    wasmtime_component_val_new: f('void *wasmtime_component_val_new(void *src)'),
    wasmtime_component_val_delete: f('void wasmtime_component_val_delete(void *value)'),
    wasmtime_component_vallist_new_uninit: f('void wasmtime_component_vallist_new_uninit(void *out, size_t size)'),
  };
}

export type ComponentApi = ReturnType<typeof bind>;

const loaded = new Map<string, ComponentApi>();

/** The component bindings for a library file, loaded once per thread. */
export function loadComponentApi(file: string): ComponentApi {
  let api = loaded.get(file);
  if (!api) loaded.set(file, (api = bind(file)));
  return api;
}

export { koffi };
