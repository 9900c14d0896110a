/**
 * The linker every component of a worker is instantiated with: our worlds' imports defined once as host functions
 * (koffi callbacks, living as long as the worker), each serving the instance whose call is running, and wasmtime's
 * error messages read out.
 */
import type { HostFunctions } from './host-imports.ts';
import { koffi, type ComponentApi, type Ptr } from './ffi.ts';
import { liftAll } from './lift.ts';
import { readNative } from './native.ts';
import { lowerOwned } from './owned.ts';
import { IMPORTS, TYPE_ONLY_IMPORTS } from './world.ts';

/** Defines every host function of our worlds in the linker, once per worker (callbacks live as long as it). */
export function link(api: ComponentApi, linker: Ptr, importsOfCurrent: () => Map<string, HostFunctions> | undefined): void {
  const root = api.wasmtime_component_linker_root(linker) as Ptr;
  const out = Buffer.alloc(8);
  const check = (error: Ptr, what: string) => {
    if (error) throw new Error(`wasmtime could not link ${what}: ${messageOf(api, error)}`);
  };
  try {
    for (const name of TYPE_ONLY_IMPORTS) {
      check(api.wasmtime_component_linker_instance_add_instance(root, name, Buffer.byteLength(name), out) as Ptr, name);
      api.wasmtime_component_linker_instance_delete(out.readBigUInt64LE(0));
    }
    for (const [iface, functions] of Object.entries(IMPORTS)) {
      check(api.wasmtime_component_linker_instance_add_instance(root, iface, Buffer.byteLength(iface), out) as Ptr, iface);
      const instance = out.readBigUInt64LE(0);
      try {
        for (const [name, signature] of Object.entries(functions)) {
          const callback = koffi.register((_data: Ptr, _context: Ptr, _type: Ptr, args: Ptr, nargs: number | bigint, results: Ptr, nresults: number | bigint): Ptr => {
            try {
              const fn = importsOfCurrent()?.get(iface)?.[name];
              if (!fn) return api.wasmtime_error_new(`${iface}#${name} is not available to this instance`) as Ptr;
              const value = (fn as (...a: unknown[]) => unknown)(...liftAll(args, Number(nargs), signature.params));
              if (signature.result !== null && Number(nresults) === 1) lowerOwned(api, results, value, signature.result);
              return 0n;
            } catch (error) {
              // Becomes a trap in the guest; thrown out of this callback it would abort the process.
              return api.wasmtime_error_new(`host function ${iface}#${name} failed: ${(error as Error).message ?? String(error)}`) as Ptr;
            }
          }, koffi.pointer(api.HostFunc));
          check(api.wasmtime_component_linker_instance_add_func(instance, name, Buffer.byteLength(name), callback, 0n, 0n) as Ptr, `${iface}#${name}`);
        }
      } finally {
        api.wasmtime_component_linker_instance_delete(instance);
      }
    }
  } finally {
    api.wasmtime_component_linker_instance_delete(root);
  }
}

export function messageOf(api: ComponentApi, error: Ptr): string {
  const vec = Buffer.alloc(16);
  api.wasmtime_error_message(error, vec);
  api.wasmtime_error_delete(error);
  const size = Number(vec.readBigUInt64LE(0));
  const text = readNative(vec.readBigUInt64LE(8), size).toString('utf8');
  api.wasm_byte_vec_delete(vec);
  return text;
}
