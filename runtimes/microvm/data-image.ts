import { closeSync, constants, fchmodSync, fchownSync, fstatSync, lstatSync, openSync, renameSync } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { makeExt4 } from './ext4.ts';

/** The file in each instance's DATA_DIR that holds what the guest writes to its DATA_DIR. */
export const DATA_IMAGE = '.microvm-data.ext4';
export const DEFAULT_DATA_BYTES = 256 * 1024 * 1024;

/**
 * The instance's writable disk: a sparse ext4 image kept in its DATA_DIR on the host (so it persists across
 * restarts, hibernation and removal with `keepData`), mounted at the DATA_DIR path in the guest. Created on
 * first use with the tenant as the owner of its root; an existing image is kept as is (its size included).
 * DATA_DIR is the tenant's (another tier may have run there, or QEMU as its uid): whatever sits at these names
 * may be a planted link or hard link to a host file, which root must never write through or chown.
 */
export function ensureDataImage(dataDir: string, owner: { uid: number; gid: number }, sizeBytes = DEFAULT_DATA_BYTES): string {
  const file = path.join(dataDir, DATA_IMAGE);
  if (!lstatSync(file, { throwIfNoEntry: false })) {
    const temp = `${file}.tmp`;
    makeExt4(temp, { label: 'tnm-data', sizeBytes, rootOwner: `${owner.uid}:${owner.gid}`, journal: true });
    // Renamed only when complete: a half-made image would otherwise be kept forever.
    renameSync(temp, file);
  }
  // QEMU runs as the tenant's uid and opens the image read-write. Through a descriptor opened without following
  // a link, and only a file with no other name: a hard link to /etc/shadow would otherwise be handed over.
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    throw new TenementError(ErrorCodes.SPAWN_FAILED, `the microvm data image ${file} cannot be opened as a file (${(error as NodeJS.ErrnoException).code}): a link is never used`);
  }
  try {
    const info = fstatSync(fd);
    if (!info.isFile() || info.nlink !== 1) {
      throw new TenementError(
        ErrorCodes.SPAWN_FAILED,
        `the microvm data image ${file} is not a regular file of its own (${info.isFile() ? `${info.nlink} names` : 'not a file'}): move it away to start the instance`,
      );
    }
    fchownSync(fd, owner.uid, owner.gid);
    fchmodSync(fd, 0o600);
  } finally {
    closeSync(fd);
  }
  return file;
}
