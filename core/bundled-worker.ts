/**
 * A worker's entry module as one plain ES module. A checkout runs the `.ts` sources through tsx, which costs each
 * worker start-up time and CPU on every call its code makes (measured for the wasm pool: ~350 -> ~650 µs per WASI
 * request), so the worker's module graph is bundled once with esbuild (what tsx itself uses) when workers start.
 * The compiled package (dist/, `.js`) runs its JavaScript as it is. If bundling fails, the worker loads the `.ts`
 * through tsx instead. Shared by the wasm pool (core/wasm/worker-bundle.ts) and the proxy workers
 * (core/dataplane/workers/entry.ts).
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface BundledWorker {
  /** The module to load: the bundle, the compiled `.js`, or the `.ts` source as a fallback. */
  file: string;
  execArgv: string[];
}

export const COMPILED = import.meta.url.endsWith('.js');

/** Inside the project's node_modules, so a bundle resolves packages as the sources do. */
const CACHE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', '.cache');

/** Profiling flags pass on (`node --cpu-prof` then profiles each worker too); tsx's loader must not. */
const profiling = (): string[] => process.execArgv.filter((flag) => flag.startsWith('--cpu-prof'));

/** `source`: the worker's entry file (its `.js` when compiled); `cacheName`: its bundle folder under node_modules/.cache. */
export function bundledWorker(source: string, cacheName: string): BundledWorker {
  if (COMPILED) return { file: source, execArgv: profiling() };
  try {
    const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
    const result = esbuild.buildSync({
      entryPoints: [source],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      write: false,
      logLevel: 'silent',
    });
    const code = result.outputFiles[0]!.contents;
    const dir = path.join(CACHE_DIR, cacheName);
    mkdirSync(dir, { recursive: true });
    // Named by content, so workers of different checkouts never load each other's bundle.
    const file = path.join(dir, `worker-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
    let current: Uint8Array | null = null;
    try {
      current = readFileSync(file);
    } catch {
      // not there yet
    }
    if (!current || Buffer.compare(current, code) !== 0) writeFileSync(file, code);
    return { file, execArgv: profiling() };
  } catch {
    return { file: source, execArgv: ['--import', import.meta.resolve('tsx')] };
  }
}
