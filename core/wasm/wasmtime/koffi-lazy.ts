/**
 * koffi, loaded on first use rather than when a module importing it is evaluated. Every wasm pool worker (and
 * the main thread, through the engine table) imports the wasmtime bindings, but most never call wasmtime: a
 * static import loaded koffi's native addon in each of them, and a worker terminated while that addon was
 * loading aborted the whole process (`FATAL ERROR: napi_throw`). A worker now loads it only when it runs a
 * wasmtime task, and a server with no wasmtime service never loads it at all.
 */
import { createRequire } from 'node:module';
import type KoffiModule from 'koffi';

type Koffi = typeof KoffiModule;

let loaded: Koffi | undefined;

function load(): Koffi {
  // Resolved from this file (or the worker bundle, which lives inside node_modules/.cache) as the import was.
  loaded ??= createRequire(import.meta.url)('koffi') as Koffi;
  return loaded;
}

/** The koffi module; its members are read from the real module, loaded at the first access. */
export const koffi: Koffi = new Proxy({} as Koffi, {
  get: (_target, name) => Reflect.get(load(), name),
  has: (_target, name) => Reflect.has(load(), name),
});
