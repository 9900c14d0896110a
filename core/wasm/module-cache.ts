/**
 * Main-thread cache of loaded wasm code: each file is read, hashed and compiled (or, for components, prepared)
 * once per content and memory cap, then shared with every instance and worker. A file that changes on disk
 * (new size or mtime) is loaded again on the next spawn; requests never compile.
 */
import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { binaryKind, v8Engine, type CompileOptions, type EngineName } from './engine.ts';
import { wasmtimeModules } from './wasmtime/host.ts';
import { prepareWasmtimeComponent } from './wasmtime/component/compile.ts';
import type { CompiledModule } from './pool.ts';
import type { ComponentArtifact } from './component/types.ts';

export type LoadedCode = { kind: 'module'; compiled: CompiledModule } | { kind: 'component'; artifact: ComponentArtifact };

interface Memo {
  size: number;
  mtimeMs: number;
  code: Promise<LoadedCode>;
}

export class ModuleCache {
  private readonly byFile = new Map<string, Memo>();
  private readonly byHash = new Map<string, Promise<LoadedCode>>();

  /** @param cacheDir where component builds keep their transpiled artifacts (under the data dir). */
  constructor(private readonly cacheDir: string) {}

  /**
   * @param engine 'wasmtime': a module becomes an artifact on disk.
   * @param options `fuel`: a module compiled with fuel metering (wasmtime; V8 has none).
   */
  async load(file: string, capPages: number, engine: EngineName = 'v8', options: CompileOptions = {}): Promise<LoadedCode> {
    // Sync: a stat costs microseconds, a trip through libuv's thread pool is on every spawn's (and wake's) path.
    const info = statSync(file);
    const memoKey = `${file}\0${capPages}\0${engine}\0${options.fuel === true}`;
    const memo = this.byFile.get(memoKey);
    if (memo && memo.size === info.size && memo.mtimeMs === info.mtimeMs) return memo.code;
    const code = this.loadFresh(file, capPages, engine, options);
    this.byFile.set(memoKey, { size: info.size, mtimeMs: info.mtimeMs, code });
    code.catch(() => this.byFile.delete(memoKey));
    return code;
  }

  private async loadFresh(file: string, capPages: number, engine: EngineName, options: CompileOptions): Promise<LoadedCode> {
    const bytes = new Uint8Array(await readFile(file));
    const hash = `${createHash('sha256').update(bytes).digest('hex')}-${capPages}`;
    const key = `${hash}\0${engine}\0${options.fuel === true}`;
    let code = this.byHash.get(key);
    if (!code) {
      code = engine === 'wasmtime' ? this.compileForWasmtime(bytes, hash, capPages, options) : this.compile(file, bytes, hash, capPages);
      this.byHash.set(key, code);
      code.catch(() => this.byHash.delete(key));
    }
    return code;
  }

  /** Compiles to an artifact once (kept on disk across restarts: a cold start only deserializes it). */
  private async compileForWasmtime(bytes: Uint8Array, hash: string, capPages: number, options: CompileOptions): Promise<LoadedCode> {
    if (binaryKind(bytes) === 'component') {
      // The cap is the store's limit there, not written into the code: one artifact per content.
      return { kind: 'component', artifact: await prepareWasmtimeComponent(bytes, hash.replace(/-\d+$/, ''), this.cacheDir, capPages) };
    }
    return { kind: 'module', compiled: wasmtimeModules.compileModule(bytes, hash, capPages, this.cacheDir, options) };
  }

  private async compile(file: string, bytes: Uint8Array, hash: string, capPages: number): Promise<LoadedCode> {
    if (binaryKind(bytes) === 'module') {
      return { kind: 'module', compiled: v8Engine.compileModule(bytes, hash, capPages, this.cacheDir) };
    }
    // Loaded only when a component is served: it brings the transpiler, which WASI-only hosts never need.
    const { prepareComponent } = await import('./component/prepare.ts');
    const artifact = await prepareComponent(file, { cacheDir: this.cacheDir, memoryPages: capPages });
    return { kind: 'component', artifact };
  }
}
