import { z } from 'zod';
import type { WasmPoolOptions } from './types.ts';

/** Options of the kernel's wasm pool, set as `pluginOptions['runtime-wasm']` (docs/wasm.md). */
export const poolOptionsSchema = z
  .strictObject({
    /** Pool worker threads; default one per core. */
    threads: z.number().int().min(1).max(256).optional(),
    /** Calls (functions and plugins) waiting for a worker beyond which new ones fail at once (503). */
    maxQueue: z.number().int().min(1).optional(),
    /**
     * Threads one instance (a tenant of a wasm service, or a wasm plugin) may hold while others wait, and
     * always for a minute after one of its calls ran into its deadline; default one less than `threads` (at
     * least 1), so a runaway tenant leaves a thread to the others. Alone, an instance may use every thread.
     */
    maxThreadsPerInstance: z.number().int().min(1).max(256).optional(),
    /** JS heap cap of each worker in MB (wasm memories are capped per function by `limits.memory`). */
    workerHeapMb: z.number().int().min(16).optional(),
    /** The engine of wasm services that name none (`wasm.engine`): 'v8' (default) or 'wasmtime' (docs/wasm.md). */
    engine: z.enum(['v8', 'wasmtime']).optional(),
    /**
     * Short calls of WASI modules on wasmtime run on the main thread, without the hop to a worker (docs/wasm.md,
     * "Short calls on the main thread"); default true. false: every call goes to a worker.
     */
    inline: z.boolean().optional(),
  })
  .default({});

export type PoolOptionsInput = z.input<typeof poolOptionsSchema>;

/** Where the options live in the config: under the wasm runtime plugin's name. */
export const POOL_OPTIONS_KEY = 'runtime-wasm';

export function toPoolOptions(options: z.output<typeof poolOptionsSchema>): WasmPoolOptions {
  return {
    ...(options.threads !== undefined && { threads: options.threads }),
    ...(options.maxQueue !== undefined && { maxQueue: options.maxQueue }),
    ...(options.maxThreadsPerInstance !== undefined && { maxThreadsPerKey: options.maxThreadsPerInstance }),
    ...(options.workerHeapMb !== undefined && { maxOldGenerationSizeMb: options.workerHeapMb }),
    ...(options.inline !== undefined && { inline: options.inline }),
  };
}
