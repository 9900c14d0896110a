import { readdirSync } from 'node:fs';
import path from 'node:path';

const SOURCE = /\.(ts|mts|cts|js|mjs|cjs)$/;

/**
 * Every source file under `dir` (no node_modules, no dot folders, no `dist` build output such as the dashboard's
 * bundled UI, no declaration files), for tests that scan code.
 */
export function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist' || entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(full));
    else if (entry.isFile() && SOURCE.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(full);
  }
  return out;
}
