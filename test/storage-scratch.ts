/**
 * Scratch data directories of the storage tests: the storage plugin keeps its quota mounts when Tenement stops
 * (on purpose: a restart finds them), so a test removes them itself, after the kernel using the folder stopped.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import path from 'node:path';

/** Mount points below `dir`, with their sources (the loop device or image behind each). */
export function mountsUnder(dir: string): Map<string, string> {
  const prefix = `${realpathSync(dir)}/`;
  const found = new Map<string, string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash > 0 && fields[4]!.startsWith(prefix)) found.set(fields[4]!, fields[dash + 2]!);
  }
  return found;
}

/** Unmounts everything below `dir` (deepest first), frees the loop devices of its images, removes it. */
export function removeScratchDataDir(dir: string): void {
  for (const mountPoint of [...mountsUnder(dir).keys()].reverse()) {
    try {
      execFileSync('umount', [mountPoint]);
    } catch {
      execFileSync('umount', ['-l', mountPoint]);
    }
  }
  // Loop devices still bound to one of the images (autoclear normally frees them with the unmount).
  const images = path.join(dir, '.storage', 'images');
  for (const service of existsSync(images) ? readdirSync(images) : []) {
    for (const file of readdirSync(path.join(images, service))) {
      const bound = execFileSync('losetup', ['-j', path.join(realpathSync(images), service, file)], { encoding: 'utf8' });
      for (const device of bound.split('\n').map((line) => line.split(':')[0]).filter(Boolean)) execFileSync('losetup', ['-d', device!]);
    }
  }
  rmSync(dir, { recursive: true, force: true });
}
