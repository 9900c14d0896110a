/**
 * The pool's worker as one plain ES module. Loading TypeScript through tsx inside a worker thread doubles the
 * CPU each call costs (measured: ~350 -> ~650 µs per WASI request on this machine, with an identical .mjs worker
 * either way), so the worker's module graph (ours and core/wasm/component's) is bundled once, with esbuild
 * (what tsx itself uses), when a pool starts. If bundling fails, workers load the .ts through tsx instead.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface WorkerEntry {
  filename: string;
  execArgv: string[];
}

/** The built package (dist/, `.js`) runs compiled JavaScript; a checkout runs the `.ts` sources through tsx. */
const COMPILED = import.meta.url.endsWith('.js');
const WORKER_TS = fileURLToPath(new URL(COMPILED ? './worker.js' : './worker.ts', import.meta.url));

/** Inside the project's node_modules, so the bundle resolves packages as the sources do. */
const BUNDLE_DIR = path.resolve(path.dirname(WORKER_TS), '..', '..', 'node_modules', '.cache', 'tenement-wasm');

export function workerEntry(): WorkerEntry {
  // Compiled already: the worker loads as it is, with no loader and nothing to bundle.
  if (COMPILED) return { filename: pathToFileURL(WORKER_TS).href, execArgv: process.execArgv.filter((flag) => flag.startsWith('--cpu-prof')) };
  try {
    const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
    const result = esbuild.buildSync({
      entryPoints: [WORKER_TS],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      write: false,
      logLevel: 'silent',
    });
    const code = result.outputFiles[0]!.contents;
    const dir = BUNDLE_DIR;
    mkdirSync(dir, { recursive: true });
    // Named by content, so pools of different checkouts never load each other's worker.
    const file = path.join(dir, `worker-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
    let current: Uint8Array | null = null;
    try {
      current = readFileSync(file);
    } catch {
      // not there yet
    }
    if (!current || Buffer.compare(current, code) !== 0) writeFileSync(file, code);
    // Only profiling flags pass to workers (`node --cpu-prof` then profiles each worker too); tsx's loader must not.
    return { filename: pathToFileURL(file).href, execArgv: process.execArgv.filter((flag) => flag.startsWith('--cpu-prof')) };
  } catch {
    return { filename: pathToFileURL(WORKER_TS).href, execArgv: ['--import', import.meta.resolve('tsx')] };
  }
}
