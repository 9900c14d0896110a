/**
 * Gives core/wasm/shared.ts the pool's constructor: imported, for this effect, by what runs wasm (the wasm
 * runtime, wasm plugins' loader), so a server that runs none never loads the pool's code.
 */
import { WasmPool } from './pool.ts';
import { provideWasmPool } from './shared.ts';

provideWasmPool((options) => new WasmPool(options));
