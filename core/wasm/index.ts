/**
 * Public face of the WASM runtime: the engine seam, the worker pool and the shared pool the kernel owns.
 * Other code (the wasm tier, wasm plugins) imports from here only.
 */
export type {
  ComponentArtifact,
  WasmCallOptions,
  WasmCallTiming,
  WasmCallOutcome,
  WasmFailureKind,
  WasmLogLine,
  WasmPoolOptions,
} from './types.ts';
export { WasmPool, type CompiledModule, type ComponentHttpOptions, type WasiCallOptions } from './pool.ts';
export { DEFAULT_MEMORY_PAGES, binaryKind, compileModule, enableWasmFeatures, memoryPagesFor, type BinaryKind } from './engine.ts';
export { ModuleCache, type LoadedCode } from './module-cache.ts';
export { sharedWasmPool } from './shared.ts';
