import type { Kernel } from '../kernel.ts';
import { POOL_OPTIONS_KEY, poolOptionsSchema, toPoolOptions } from './pool-options.ts';
import { WasmPool } from './pool.ts';

const pools = new WeakMap<Kernel, WasmPool>();

/**
 * The kernel's one wasm pool, shared by the wasm tier and wasm plugins so guest code of both competes for the
 * same threads (one per core). Made on first use, whoever asks first, with the options in
 * `pluginOptions['runtime-wasm']` (invalid ones are reported by that plugin; here they fall back to defaults).
 * Closed when the kernel stops, after its instances.
 */
export function sharedWasmPool(kernel: Kernel): WasmPool {
  let pool = pools.get(kernel);
  if (!pool) {
    const parsed = poolOptionsSchema.safeParse(kernel.config.pluginOptions[POOL_OPTIONS_KEY]);
    pool = new WasmPool(parsed.success ? toPoolOptions(parsed.data) : {});
    pools.set(kernel, pool);
    const created = pool;
    kernel.onClose(async () => {
      pools.delete(kernel);
      await created.close();
    });
  }
  return pool;
}
