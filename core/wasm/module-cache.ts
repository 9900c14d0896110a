/**
 * Main-thread cache of loaded wasm code: each file is read, hashed and compiled (or, for components, prepared)
 * once per content and memory cap, then shared with every instance and worker. A file that changes on disk
 * (new size or mtime) is loaded again on the next spawn; requests never compile.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { binaryKind, compileModule } from './engine.ts';
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

  async load(file: string, capPages: number): Promise<LoadedCode> {
    const info = await stat(file);
    const memoKey = `${file}\0${capPages}`;
    const memo = this.byFile.get(memoKey);
    if (memo && memo.size === info.size && memo.mtimeMs === info.mtimeMs) return memo.code;
    const code = this.loadFresh(file, capPages);
    this.byFile.set(memoKey, { size: info.size, mtimeMs: info.mtimeMs, code });
    code.catch(() => this.byFile.delete(memoKey));
    return code;
  }

  private async loadFresh(file: string, capPages: number): Promise<LoadedCode> {
    const bytes = new Uint8Array(await readFile(file));
    const hash = `${createHash('sha256').update(bytes).digest('hex')}-${capPages}`;
    let code = this.byHash.get(hash);
    if (!code) {
      code = this.compile(file, bytes, hash, capPages);
      this.byHash.set(hash, code);
      code.catch(() => this.byHash.delete(hash));
    }
    return code;
  }

  private async compile(file: string, bytes: Uint8Array, hash: string, capPages: number): Promise<LoadedCode> {
    if (binaryKind(bytes) === 'module') {
      return { kind: 'module', compiled: { hash, module: compileModule(bytes, capPages), capPages } };
    }
    // Loaded only when a component is served: it brings the transpiler, which WASI-only hosts never need.
    const { prepareComponent } = await import('./component/prepare.ts');
    const artifact = await prepareComponent(file, { cacheDir: this.cacheDir, memoryPages: capPages });
    return { kind: 'component', artifact };
  }
}
