import type { Kernel } from '../kernel.ts';
import { POOL_OPTIONS_KEY, poolOptionsSchema, toPoolOptions } from './pool-options.ts';
import type { WasmPoolOptions } from './types.ts';
import type { WasmPool } from './pool.ts';

const pools = new WeakMap<Kernel, WasmPool>();

/**
 * How a pool is made, given by core/wasm/provide-pool.ts when something that runs wasm imports it (the wasm
 * runtime, wasm plugins): this module is imported by every PluginContext, and the pool's code (piscina, koffi,
 * the engines) stays out of a server that runs no wasm (bench/footprint.ts).
 */
let makePool: ((options: WasmPoolOptions) => WasmPool) | null = null;

export function provideWasmPool(make: (options: WasmPoolOptions) => WasmPool): void {
  makePool = make;
}

/**
 * The kernel's one wasm pool, shared by the wasm tier and wasm plugins so guest code of both competes for the
 * same threads (one per core). Made on first use, whoever asks first, with the options in
 * `pluginOptions['runtime-wasm']` (invalid ones are reported by that plugin; here they fall back to defaults).
 * Closed when the kernel stops, after its instances.
 */
export function sharedWasmPool(kernel: Kernel): WasmPool {
  let pool = pools.get(kernel);
  if (!pool) {
    if (!makePool) throw new Error("the wasm pool's module is not loaded: a plugin that calls ctx.wasmPool() imports core/wasm/provide-pool.ts");
    const parsed = poolOptionsSchema.safeParse(kernel.config.pluginOptions[POOL_OPTIONS_KEY]);
    pool = makePool(parsed.success ? toPoolOptions(parsed.data) : {});
    pools.set(kernel, pool);
    const created = pool;
    kernel.onClose(async () => {
      pools.delete(kernel);
      await created.close();
    });
  }
  return pool;
}
