/**
 * The benches' base: where the repository and `ten` are, what a `ten` process runs, the loopback address, and the
 * small helpers every bench module needs. Imports nothing else from bench/, so every module can build on it.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(BENCH_DIR, '..');
export const TEN_BIN = path.join(ROOT, 'bin', 'ten.mjs');

/** What a `ten` process runs: the compiled package (dist/, `npm run build`) or the sources through tsx. */
export interface TenEntry {
  /** The script node is started with. */
  script: string;
  compiled: boolean;
  /** For the report: which of the two, and whether dist/ is older than a source file. */
  label: string;
}

/** Newest modification time of a .ts file under the given folders (the sources dist/ is built from). */
function newestSource(dirs: readonly string[]): { file: string; mtimeMs: number } {
  let newest = { file: '', mtimeMs: 0 };
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules' && entry.name !== 'ui') walk(file);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const mtimeMs = statSync(file).mtimeMs;
        if (mtimeMs > newest.mtimeMs) newest = { file, mtimeMs };
      }
    }
  };
  for (const dir of dirs) if (existsSync(path.join(ROOT, dir))) walk(path.join(ROOT, dir));
  return newest;
}

/**
 * The compiled package's entry when dist/ has one (what an installed `ten` runs: bench/footprint.ts and bench/cli.ts
 * measure that), else the sources through bin/ten.mjs. A dist/ older than the newest source is used but said so.
 */
export function tenEntry(): TenEntry {
  const compiled = path.join(ROOT, 'dist', 'cli', 'main.js');
  if (!existsSync(compiled)) return { script: TEN_BIN, compiled: false, label: 'sources through tsx (no dist/: `npm run build` to measure the compiled package)' };
  const source = newestSource(['cli', 'core', 'plugins', 'runtimes', 'sdk']);
  const stale = source.mtimeMs > statSync(compiled).mtimeMs;
  return {
    script: compiled,
    compiled: true,
    label: `compiled package (dist/cli/main.js)${stale ? `: STALE, ${path.relative(ROOT, source.file)} is newer; run npm run build` : ''}`,
  };
}

export const LOOPBACK = '127.0.0.1';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** True when the module with this import.meta.url is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && pathToFileURL(path.resolve(entry)).href === moduleUrl;
}
