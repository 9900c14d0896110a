/**
 * `npm run fetch:wasmtime`: downloads the pinned wasmtime wheel with pip, checks its sha256 and extracts the
 * C API library into the cache folder the wasm tier loads it from (core/wasm/wasmtime/library.ts).
 */
import { fetchWasmtime } from '../core/wasm/wasmtime/library.ts';

try {
  await fetchWasmtime((line) => console.log(line));
} catch (error) {
  console.error(`fetch:wasmtime: ${(error as Error).message}`);
  process.exitCode = 1;
}
