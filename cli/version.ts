/**
 * What `ten --version` prints: the package's version (what a user installed: package.json) and the kernel's, which
 * plugins' `kernel` ranges are matched against. Read from package.json found upwards of this file, which is
 * cli/ in a checkout and dist/cli/ in the installed package; a plain file read, no module loader.
 */
import { readFileSync } from 'node:fs';
import { KERNEL_VERSION } from '../core/version.ts';

function packageVersion(): string {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      const manifest = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: unknown; version?: unknown };
      if (manifest.name === 'tenement' && typeof manifest.version === 'string') return manifest.version;
    } catch {
      // not there: one level up
    }
  }
  return 'unknown';
}

/** `ten 0.1.0 (kernel 1.0.0)`. */
export function versionLine(): string {
  return `ten ${packageVersion()} (kernel ${KERNEL_VERSION})`;
}
