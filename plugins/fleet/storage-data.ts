/**
 * A move's data when the instance has `limits.storage` (docs/fleet-move.md#storage-limits): its DATA_DIR is a link
 * to the storage plugin's mounted quota image. The source packs what is inside the image; the target checks, before
 * anything stops, that it fits the target's image, and copies it into that image (emptied first) rather than beside
 * it, so the moved data counts against the target's quota at once. Found from the file system only (the link and the
 * mount it points at): the fleet plugin does not import the storage plugin.
 */
import { execFile } from 'node:child_process';
import { lstatSync, readdirSync, realpathSync, rmSync, statSync, statfsSync } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { MAX_ENTRIES } from './archive.ts';

/** ext4 keeps this folder in every image; it is the file system's, not the tenant's data. */
export const LOST_FOUND = 'lost+found';
/**
 * A target whose image is not mounted yet (the instance never started there) has the configured limit, less what
 * ext4 takes for itself (journal, inode tables: about 6% of a 16 MiB image, less for larger ones).
 */
const UNMOUNTED_SHARE = 0.9;

/** The mount DATA_DIR links to when it is a link to a mounted file system (a quota image), else null. */
export function storageMount(dataDir: string): string | null {
  try {
    if (!lstatSync(dataDir).isSymbolicLink()) return null;
    const real = realpathSync(dataDir);
    // A mount point sits on another device than the folder holding it.
    return statSync(real).dev !== statSync(path.dirname(real)).dev ? real : null;
  } catch {
    return null;
  }
}

export function isLink(file: string): boolean {
  try {
    return lstatSync(file).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Bytes the files under `dir` take on disk (lost+found left out); bounded like an archive's entries. */
export async function dataBytes(dir: string): Promise<number> {
  let total = 0;
  let entries = 0;
  const walk = async (folder: string, top: boolean): Promise<void> => {
    for (const name of await readdir(folder)) {
      if (top && name === LOST_FOUND) continue;
      if (++entries > MAX_ENTRIES) throw new TenementError(ErrorCodes.BODY_TOO_LARGE, `fleet move: more than ${MAX_ENTRIES} entries in DATA_DIR`);
      const full = path.join(folder, name);
      const info = await lstat(full);
      total += info.blocks * 512;
      if (info.isDirectory()) await walk(full, false);
    }
  };
  await walk(dir, true);
  return total;
}

/**
 * The bytes an instance's data may take on this node: the image's free space plus what its files take now (they
 * are replaced) when DATA_DIR links to a mounted image; the configured limit, less ext4's own share, when not yet;
 * null without a limit.
 */
export async function storageRoom(dataDir: string, limitBytes: number | undefined): Promise<number | null> {
  const mount = storageMount(dataDir);
  if (mount !== null) {
    const fs = statfsSync(mount);
    return fs.bavail * fs.bsize + (await dataBytes(mount));
  }
  return limitBytes === undefined ? null : Math.floor(limitBytes * UNMOUNTED_SHARE);
}

/**
 * Puts the moved data (`from`, a folder of this node's file system) into the mounted image `mount`: its entries
 * (but lost+found) are deleted, then `from`'s copied in with owners, modes and times (`cp -a`). Rejects when the
 * copy fails (the image emptied again): the caller keeps `from`.
 */
export async function copyIntoImage(from: string, mount: string): Promise<void> {
  const empty = (): void => {
    for (const name of readdirSync(mount)) if (name !== LOST_FOUND) rmSync(path.join(mount, name), { recursive: true, force: true });
  };
  empty();
  rmSync(path.join(from, LOST_FOUND), { recursive: true, force: true });
  try {
    await new Promise<void>((resolve, reject) => {
      execFile('cp', ['-a', '--', `${from}/.`, `${mount}/`], { timeout: 10 * 60_000 }, (error, _stdout, stderr) =>
        error ? reject(new Error(`cp: ${String(stderr).trim() || error.message}`)) : resolve(),
      );
    });
  } catch (error) {
    empty();
    throw error;
  }
}
