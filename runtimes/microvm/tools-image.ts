import { createHash } from 'node:crypto';
import { realpathSync, statSync } from 'node:fs';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { which } from './which.ts';
import { copyHostPath, sharedLibraries } from './host-files.ts';
import { makeExt4 } from './ext4.ts';

/**
 * The host programs the guest needs, at their host paths: node (the service command is usually `node ...`)
 * and util-linux's setpriv (the guest init drops to the tenant's uid with it; busybox's setpriv cannot), each
 * with the shared libraries `ldd` names.
 */
export function hostSetpriv(): string {
  const setpriv = which('setpriv', `${process.env.PATH ?? ''}:/usr/bin:/bin`);
  if (!setpriv) throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, 'setpriv is not on PATH: apt-get install util-linux');
  return setpriv;
}

export function toolFiles(): string[] {
  const programs = [process.execPath, hostSetpriv()];
  const files = new Set<string>();
  for (const program of programs) {
    files.add(program);
    files.add(realpathSync(program));
    for (const lib of sharedLibraries(program)) files.add(lib);
  }
  return [...files].sort();
}

/** Changes when any of those files changes (an upgraded node makes a new image). */
export function toolsKey(files: readonly string[]): string {
  const hash = createHash('sha256');
  for (const file of files) {
    const info = statSync(file);
    hash.update(`${file}\0${info.size}\0${info.mtimeMs}\0`);
  }
  return hash.digest('hex').slice(0, 16);
}

/** The read-only ext4 image of those files, built from a staging folder that mirrors host paths. */
export function buildToolsImage(file: string, stage: string, files: readonly string[]): void {
  let bytes = 0;
  for (const item of files) {
    copyHostPath(stage, item);
    bytes += statSync(item).size;
  }
  makeExt4(file, { label: 'tnm-tools', sizeBytes: Math.ceil(bytes * 1.15) + 16 * 1024 * 1024, from: stage, journal: false });
}

export function toolsImageName(key: string): string {
  return `tools-${key}.ext4`;
}
