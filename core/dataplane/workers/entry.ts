/**
 * The proxy worker's entry as one plain ES module, bundled with esbuild when workers start (as the wasm pool's
 * worker is: loading TypeScript through tsx costs each process startup time and CPU on every request's code);
 * the compiled package runs its .js as is. If bundling fails, the worker loads the .ts through tsx.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface WorkerEntry {
  file: string;
  execArgv: string[];
}

const COMPILED = import.meta.url.endsWith('.js');
const WORKER = fileURLToPath(new URL(COMPILED ? './worker-main.js' : './worker-main.ts', import.meta.url));
const BUNDLE_DIR = path.resolve(path.dirname(WORKER), '..', '..', '..', 'node_modules', '.cache', 'tenement-proxy');
/** Profiling flags pass on (`--cpu-prof` profiles each worker too); tsx's loader must not. */
const profiling = (): string[] => process.execArgv.filter((flag) => flag.startsWith('--cpu-prof'));

export function proxyWorkerEntry(): WorkerEntry {
  if (COMPILED) return { file: WORKER, execArgv: profiling() };
  try {
    const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
    const result = esbuild.buildSync({
      entryPoints: [WORKER],
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      packages: 'external',
      write: false,
      logLevel: 'silent',
    });
    const code = result.outputFiles[0]!.contents;
    mkdirSync(BUNDLE_DIR, { recursive: true });
    // Named by content: two checkouts never load each other's worker.
    const file = path.join(BUNDLE_DIR, `worker-${createHash('sha256').update(code).digest('hex').slice(0, 16)}.mjs`);
    let current: Uint8Array | null = null;
    try {
      current = readFileSync(file);
    } catch {
      // not there yet
    }
    if (!current || Buffer.compare(current, code) !== 0) writeFileSync(file, code);
    return { file, execArgv: profiling() };
  } catch {
    return { file: WORKER, execArgv: ['--import', import.meta.resolve('tsx')] };
  }
}
