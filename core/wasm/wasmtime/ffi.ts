/**
 * Bindings for exactly the wasmtime C API functions the engine uses, for the pinned release (library.ts):
 * signatures and struct sizes from wasmtime 49.0.0's headers (crates/c-api/include at v49.0.0, the same as the
 * wheel's generated `_bindings.py`). Pointers are BigInts (koffi 3); out-parameters are small Buffers.
 * Struct layouts used here, all little-endian x86-64:
 *   wasm_byte_vec_t     { size_t size; uint8_t *data }                      16 bytes
 *   wasmtime_instance_t { uint64_t store_id; size_t private }              16 bytes
 *   wasmtime_extern_t   { uint8_t kind; (pad 7) union of 24 bytes }        32 bytes, `of` at 8
 *   wasmtime_func_t     { uint64_t store_id; void *private }               16 bytes (extern kind 0)
 *   wasmtime_memory_t   { { uint64_t store_id; uint32_t p1 } ; uint32_t p2 } 24 bytes (extern kind 3)
 *   wasm_valtype_vec_t  { size_t size; wasm_valtype_t **data }               16 bytes
 */
import { koffi } from './koffi-lazy.ts';

export type Ptr = bigint;

export const BYTE_VEC_SIZE = 16;
export const INSTANCE_SIZE = 16;
export const EXTERN_SIZE = 32;
export const EXTERN_OF = 8;
export const EXTERN_FUNC = 0;
export const EXTERN_MEMORY = 3;
export const TRAP_CODE_INTERRUPT = 10;
export const TRAP_CODE_OUT_OF_FUEL = 11;
export const TRAP_CODE_STACK_OVERFLOW = 0;
export const TRAP_CODE_UNREACHABLE = 9;
export const VALKIND_I32 = 0;
export const VALKIND_I64 = 1;

function bind(file: string) {
  const lib = koffi.load(file);
  const f = (signature: string) => lib.func(signature);
  // Writes to a guest's stdout/stderr: (data, bytes, length) -> bytes taken, or a negative OS error code.
  const WriteCallback = koffi.proto('intptr_t tnm_wasi_write(void *data, const uint8_t *buf, size_t len)');
  // A host function (wasmtime_func_callback_t): returns a trap, or null with its results written.
  const HostCallback = koffi.proto('void *tnm_host_func(void *env, void *caller, void *args, size_t nargs, void *results, size_t nresults)');
  // Called when a store's epoch deadline is reached (wasmtime_store_epoch_deadline_callback): null with a new
  // delta written (continue), or an error (the guest stops with it).
  const EpochDeadlineCallback = koffi.proto('void *tnm_epoch_deadline(void *context, void *data, void *delta, void *kind)');
  return {
    WriteCallback,
    HostCallback,
    EpochDeadlineCallback,
    // config and engine
    wasm_config_new: f('void *wasm_config_new()'),
    wasmtime_config_epoch_interruption_set: f('void wasmtime_config_epoch_interruption_set(void *config, bool enable)'),
    wasmtime_config_consume_fuel_set: f('void wasmtime_config_consume_fuel_set(void *config, bool enable)'),
    wasm_engine_new_with_config: f('void *wasm_engine_new_with_config(void *config)'),
    // the pooling allocator (host.ts): instances' memories and tables in slots reused across stores
    wasmtime_pooling_allocation_config_new: f('void *wasmtime_pooling_allocation_config_new()'),
    wasmtime_pooling_allocation_config_delete: f('void wasmtime_pooling_allocation_config_delete(void *pooling)'),
    wasmtime_pooling_allocation_config_total_memories_set: f('void wasmtime_pooling_allocation_config_total_memories_set(void *pooling, uint32_t count)'),
    wasmtime_pooling_allocation_config_total_tables_set: f('void wasmtime_pooling_allocation_config_total_tables_set(void *pooling, uint32_t count)'),
    wasmtime_pooling_allocation_config_total_core_instances_set: f('void wasmtime_pooling_allocation_config_total_core_instances_set(void *pooling, uint32_t count)'),
    wasmtime_pooling_allocation_config_total_component_instances_set: f('void wasmtime_pooling_allocation_config_total_component_instances_set(void *pooling, uint32_t count)'),
    wasmtime_pooling_allocation_config_max_memory_size_set: f('void wasmtime_pooling_allocation_config_max_memory_size_set(void *pooling, size_t bytes)'),
    wasmtime_pooling_allocation_config_linear_memory_keep_resident_set: f('void wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(void *pooling, size_t bytes)'),
    wasmtime_pooling_allocation_config_table_keep_resident_set: f('void wasmtime_pooling_allocation_config_table_keep_resident_set(void *pooling, size_t bytes)'),
    wasmtime_pooling_allocation_config_max_unused_warm_slots_set: f('void wasmtime_pooling_allocation_config_max_unused_warm_slots_set(void *pooling, uint32_t count)'),
    wasmtime_pooling_allocation_strategy_set: f('void wasmtime_pooling_allocation_strategy_set(void *config, const void *pooling)'),
    wasm_engine_delete: f('void wasm_engine_delete(void *engine)'),
    wasmtime_engine_increment_epoch: f('void wasmtime_engine_increment_epoch(void *engine)'),
    // vectors, errors and traps
    wasm_byte_vec_new: f('void wasm_byte_vec_new(void *out, size_t size, const uint8_t *data)'),
    wasm_byte_vec_delete: f('void wasm_byte_vec_delete(void *vec)'),
    wasmtime_error_message: f('void wasmtime_error_message(void *error, void *out)'),
    wasmtime_error_exit_status: f('bool wasmtime_error_exit_status(void *error, void *status)'),
    wasmtime_error_delete: f('void wasmtime_error_delete(void *error)'),
    wasm_trap_message: f('void wasm_trap_message(void *trap, void *out)'),
    wasmtime_trap_code: f('bool wasmtime_trap_code(void *trap, void *code)'),
    wasm_trap_delete: f('void wasm_trap_delete(void *trap)'),
    // modules
    wasmtime_module_new: f('void *wasmtime_module_new(void *engine, const uint8_t *wasm, size_t len, void *out)'),
    wasmtime_module_serialize: f('void *wasmtime_module_serialize(void *module, void *out)'),
    wasmtime_module_deserialize_file: f('void *wasmtime_module_deserialize_file(void *engine, const char *path, void *out)'),
    wasmtime_module_delete: f('void wasmtime_module_delete(void *module)'),
    // stores
    wasmtime_store_new: f('void *wasmtime_store_new(void *engine, void *data, void *finalizer)'),
    wasmtime_store_context: f('void *wasmtime_store_context(void *store)'),
    wasmtime_store_limiter: f('void wasmtime_store_limiter(void *store, int64_t memory_size, int64_t table_elements, int64_t instances, int64_t tables, int64_t memories)'),
    wasmtime_store_delete: f('void wasmtime_store_delete(void *store)'),
    wasmtime_context_set_epoch_deadline: f('void wasmtime_context_set_epoch_deadline(void *context, uint64_t ticks_beyond_current)'),
    wasmtime_context_set_fuel: f('void *wasmtime_context_set_fuel(void *context, uint64_t fuel)'),
    wasmtime_context_get_fuel: f('void *wasmtime_context_get_fuel(void *context, void *fuel)'),
    wasmtime_context_set_wasi: f('void *wasmtime_context_set_wasi(void *context, void *wasi)'),
    // WASI preview 1
    wasi_config_new: f('void *wasi_config_new()'),
    wasi_config_delete: f('void wasi_config_delete(void *config)'),
    wasi_config_set_argv: f('bool wasi_config_set_argv(void *config, size_t argc, const char **argv)'),
    wasi_config_set_env: f('bool wasi_config_set_env(void *config, size_t envc, const char **names, const char **values)'),
    wasi_config_set_stdin_bytes: f('void wasi_config_set_stdin_bytes(void *config, void *binary)'),
    wasi_config_set_stdout_custom: f('void wasi_config_set_stdout_custom(void *config, void *callback, void *data, void *finalizer)'),
    wasi_config_set_stdout_file: f('bool wasi_config_set_stdout_file(void *config, const char *path)'),
    wasi_config_set_stderr_file: f('bool wasi_config_set_stderr_file(void *config, const char *path)'),
    wasi_config_set_stderr_custom: f('void wasi_config_set_stderr_custom(void *config, void *callback, void *data, void *finalizer)'),
    wasi_config_preopen_dir: f('bool wasi_config_preopen_dir(void *config, const char *host_path, const char *guest_path, bool fs_mutable)'),
    // linking, instances and calls
    wasmtime_linker_new: f('void *wasmtime_linker_new(void *engine)'),
    wasmtime_linker_define_wasi: f('void *wasmtime_linker_define_wasi(void *linker)'),
    wasmtime_linker_instantiate_pre: f('void *wasmtime_linker_instantiate_pre(void *linker, void *module, void *out)'),
    wasmtime_linker_delete: f('void wasmtime_linker_delete(void *linker)'),
    wasmtime_instance_pre_instantiate: f('void *wasmtime_instance_pre_instantiate(void *pre, void *context, void *instance, void *trap)'),
    wasmtime_instance_pre_delete: f('void wasmtime_instance_pre_delete(void *pre)'),
    wasmtime_instance_export_get: f('bool wasmtime_instance_export_get(void *context, void *instance, const char *name, size_t len, void *out)'),
    wasmtime_func_call: f('void *wasmtime_func_call(void *context, void *func, void *args, size_t nargs, void *results, size_t nresults, void *trap)'),
    wasmtime_memory_data_size: f('size_t wasmtime_memory_data_size(void *context, void *memory)'),
    // --- per-request linking of the open-files adapter (files-adapter.ts, run.ts) ---
    wasmtime_linker_allow_shadowing: f('void wasmtime_linker_allow_shadowing(void *linker, bool allow)'),
    wasmtime_linker_define_instance: f('void *wasmtime_linker_define_instance(void *linker, void *context, const char *name, size_t len, void *instance)'),
    wasmtime_linker_instantiate: f('void *wasmtime_linker_instantiate(void *linker, void *context, void *module, void *instance, void *trap)'),
    // --- end of the adapter block ---
    // --- host functions: the main thread's stand-ins for WASI imports that could block it (inline.ts) ---
    wasm_valtype_new: f('void *wasm_valtype_new(uint8_t kind)'),
    wasm_valtype_vec_new: f('void wasm_valtype_vec_new(void *out, size_t size, const void *data)'),
    wasm_functype_new: f('void *wasm_functype_new(void *params, void *results)'),
    wasm_functype_delete: f('void wasm_functype_delete(void *type)'),
    wasmtime_linker_define_func: f('void *wasmtime_linker_define_func(void *linker, const char *module, size_t module_len, const char *name, size_t name_len, const void *type, tnm_host_func *callback, void *env, void *finalizer)'),
    wasmtime_trap_new: f('void *wasmtime_trap_new(const char *message, size_t len)'),
    wasmtime_error_new: f('void *wasmtime_error_new(const char *message)'),
    wasmtime_store_epoch_deadline_callback: f('void wasmtime_store_epoch_deadline_callback(void *store, tnm_epoch_deadline *callback, void *data, void *finalizer)'),
  };
}

export type Wasmtime = ReturnType<typeof bind>;

const loaded = new Map<string, Wasmtime>();

/** The bindings for a library file, loaded once per thread. Throws when the file cannot be loaded. */
export function loadWasmtime(file: string): Wasmtime {
  let lib = loaded.get(file);
  if (!lib) loaded.set(file, (lib = bind(file)));
  return lib;
}

export { koffi };
