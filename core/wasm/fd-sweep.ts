/**
 * Closes what a WASI guest's worker left open when it was terminated at its deadline. node:wasi (uvwasi) opens
 * the preopened DATA_DIR and every file the guest opens as descriptors of the whole process, and closes them
 * only on fd_close: a terminated worker runs no more code, so its request's descriptors would stay open for
 * the life of the process (one per timeout, more if the guest opened files first).
 *
 * Only called while no call of that tenant runs (fair-share.ts holds its lane), so every descriptor under its
 * DATA_DIR is a leftover: nothing else in this process keeps one there (an instance's Unix socket is skipped by
 * type). Costs one pass over /proc/self/fd, on timeouts only.
 */
import { closeSync, fstatSync, readdirSync, readlinkSync, realpathSync } from 'node:fs';

/**
 * Closes the memfds named `/memfd:<prefix>...` (a wasmtime worker's stdout/stderr captures, wasmtime/run.ts)
 * when their worker was terminated: it cannot close them itself. Only that worker's names match.
 */
export function closeMemfdsNamed(prefix: string): number {
  let closed = 0;
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return 0;
  }
  for (const name of names) {
    try {
      if (!readlinkSync(`/proc/self/fd/${name}`).startsWith(`/memfd:${prefix}`)) continue;
      closeSync(Number(name));
      closed++;
    } catch {
      // closed since the listing
    }
  }
  return closed;
}

export function closeDescriptorsUnder(dir: string): number {
  let root = dir;
  try {
    root = realpathSync(dir);
  } catch {
    // removed meanwhile: the kernel's path is what the links name, with " (deleted)"
  }
  let closed = 0;
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return 0;
  }
  for (const name of names) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${name}`);
    } catch {
      continue;
    }
    if (target !== root && !target.startsWith(`${root}/`) && target !== `${root} (deleted)`) continue;
    const fd = Number(name);
    try {
      const stat = fstatSync(fd);
      if (!stat.isFile() && !stat.isDirectory()) continue;
      closeSync(fd);
      closed++;
    } catch {
      // closed since the listing
    }
  }
  return closed;
}
