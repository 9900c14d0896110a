import { statfsSync } from 'node:fs';

export interface StorageUsage {
  /** Bytes in use in the instance's file system (its files and directories). */
  usedBytes: number;
  /**
   * Bytes the tenant can hold in all: the image's size less ext4's own metadata (journal, inode tables;
   * about 12% of a 64MiB image, less on bigger ones). Writing past it fails with ENOSPC.
   */
  limitBytes: number;
  /** The image's size: `limits.storage` (or the size it was kept at when the limit was lowered below use). */
  imageBytes: number;
  /** Files and directories in use, and the most the file system can hold (ext4 has a fixed inode count). */
  inodesUsed: number;
  inodesLimit: number;
}

/** statfs of the mount: about 5 µs, so it is read fresh for every view and every poll rather than cached. */
export function readUsage(mountPoint: string, imageBytes: number): StorageUsage | null {
  try {
    const s = statfsSync(mountPoint);
    // -m 0 at mkfs: no reserved blocks, so free and available are the same; use what the tenant can get.
    const used = (s.blocks - s.bfree) * s.bsize;
    return {
      usedBytes: used,
      limitBytes: used + s.bavail * s.bsize,
      imageBytes,
      inodesUsed: s.files - s.ffree,
      inodesLimit: s.files,
    };
  } catch {
    return null;
  }
}

/** Share of the limit in use, of bytes or of inodes (either one full means ENOSPC). */
export function fullness(usage: StorageUsage): number {
  const bytes = usage.limitBytes > 0 ? usage.usedBytes / usage.limitBytes : 0;
  const inodes = usage.inodesLimit > 0 ? usage.inodesUsed / usage.inodesLimit : 0;
  return Math.max(bytes, inodes);
}
