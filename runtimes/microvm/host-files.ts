import { spawnSync } from 'node:child_process';
import { copyFileSync, lstatSync, mkdirSync, readlinkSync, symlinkSync } from 'node:fs';
import path from 'node:path';

/**
 * Copies `file` into `stage` at its host path, recreating every symlink met on the way (`/lib` -> `usr/lib`,
 * `libc.so.6` -> ...) so the guest resolves the same paths the host does.
 */
export function copyHostPath(stage: string, file: string, seen = new Set<string>()): void {
  if (seen.has(file)) return;
  seen.add(file);
  const parts = path.resolve(file).split('/').filter(Boolean);
  let current = '/';
  for (let i = 0; i < parts.length; i++) {
    current = path.join(current, parts[i]!);
    const target = path.join(stage, current);
    const info = lstatSync(current);
    if (info.isSymbolicLink()) {
      const link = readlinkSync(current);
      mkdirSync(path.dirname(target), { recursive: true });
      try {
        symlinkSync(link, target);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const rest = parts.slice(i + 1).join('/');
      copyHostPath(stage, path.join(path.resolve(path.dirname(current), link), rest), seen);
      return;
    }
    if (info.isDirectory()) {
      mkdirSync(target, { recursive: true });
      continue;
    }
    copyFileSync(current, target);
    return;
  }
}

/** The shared libraries (and the loader) a dynamically linked program loads, from `ldd`. */
export function sharedLibraries(program: string): string[] {
  const result = spawnSync('ldd', [program], { encoding: 'utf8' });
  if (result.status !== 0) return [];
  const found: string[] = [];
  for (const line of result.stdout.split('\n')) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (match) found.push(match[1]!);
  }
  return found;
}
