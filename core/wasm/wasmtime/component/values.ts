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
 * This file holds the types and what the three share; arena.ts lowers arguments, lift.ts reads results,
 * owned.ts builds host-function results.
 *
 * The C API has no byte-list fast path: a `list<u8>` travels as one 32-byte value per byte (and wasmtime holds
 * its own `Val` per byte while it copies), which is what bounds bodies on this engine (run.ts).
 */

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
export function jsName(name: string): string {
  let out = camelNames.get(name);
  if (out === undefined) {
    out = camel(name);
    if (camelNames.size < 10_000) camelNames.set(name, out);
  }
  return out;
}

export function fail(what: string): never {
  throw new TypeError(`cannot pass the value to the component: ${what}`);
}
