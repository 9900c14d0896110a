import { chmodSync, chownSync, existsSync, renameSync } from 'node:fs';
import path from 'node:path';
import { makeExt4 } from './ext4.ts';

/** The file in each instance's DATA_DIR that holds what the guest writes to its DATA_DIR. */
export const DATA_IMAGE = '.microvm-data.ext4';
export const DEFAULT_DATA_BYTES = 256 * 1024 * 1024;

/**
 * The instance's writable disk: a sparse ext4 image kept in its DATA_DIR on the host (so it persists across
 * restarts, hibernation and removal with `keepData`), mounted at the DATA_DIR path in the guest. Created on
 * first use with the tenant as the owner of its root; an existing image is kept as is (its size included).
 */
export function ensureDataImage(dataDir: string, owner: { uid: number; gid: number }, sizeBytes = DEFAULT_DATA_BYTES): string {
  const file = path.join(dataDir, DATA_IMAGE);
  if (!existsSync(file)) {
    const temp = `${file}.tmp`;
    makeExt4(temp, { label: 'tnm-data', sizeBytes, rootOwner: `${owner.uid}:${owner.gid}`, journal: true });
    // Renamed only when complete: a half-made image would otherwise be kept forever.
    renameSync(temp, file);
  }
  // QEMU runs as the tenant's uid and opens the image read-write.
  chownSync(file, owner.uid, owner.gid);
  chmodSync(file, 0o600);
  return file;
}
