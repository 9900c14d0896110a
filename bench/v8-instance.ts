/**
 * A V8 instance of a WASI command linked the way core/wasm/wasi-run.ts links it, for the benches' instantiate
 * figures: a fresh node:wasi, every import a JS closure, and (a module from compileCommand imports its memory)
 * a memory lent from the thread's pool, given back with `release` as a served request gives it back.
 */
import { MEMORY_IMPORT_MODULE, MEMORY_IMPORT_NAME, memoryShape } from '../core/wasm/memory-import.ts';
import { lendMemory, returnMemory } from '../core/wasm/memory-pool.ts';

export interface V8Linked {
  instance: WebAssembly.Instance;
  memory: WebAssembly.Memory | null;
}

export async function v8Linker(module: WebAssembly.Module): Promise<{ make: () => V8Linked; release: (linked: V8Linked) => void }> {
  const { WASI } = await import('node:wasi');
  const shape = memoryShape(module);
  const make = (): V8Linked => {
    const base = new WASI({ version: 'preview1', returnOnExit: true }).getImportObject() as { wasi_snapshot_preview1: Record<string, (...args: number[]) => number> };
    const wrapped: Record<string, (...args: number[]) => number> = {};
    for (const [name, fn] of Object.entries(base.wasi_snapshot_preview1)) wrapped[name] = (...args: number[]) => fn(...args);
    const memory = shape ? lendMemory(shape) : null;
    const imports: WebAssembly.Imports = memory ? { wasi_snapshot_preview1: wrapped, [MEMORY_IMPORT_MODULE]: { [MEMORY_IMPORT_NAME]: memory } } : { wasi_snapshot_preview1: wrapped };
    return { instance: new WebAssembly.Instance(module, imports), memory };
  };
  const release = (linked: V8Linked): void => {
    if (shape && linked.memory) returnMemory(shape, linked.memory);
  };
  return { make, release };
}
