import { spawnSync } from 'node:child_process';
import { rmSync, truncateSync, writeFileSync } from 'node:fs';
import { ErrorCodes, TenementError } from '../../core/errors.ts';

const MKFS_PATH = '/usr/sbin:/sbin:/usr/bin:/bin';

export interface Ext4Options {
  label: string;
  sizeBytes: number;
  /** Fill the file system from this folder (mkfs.ext4 -d). */
  from?: string;
  /** Owner of the root folder, `uid:gid`. */
  rootOwner?: string;
  /** Read-only images need no journal; a writable data image keeps one so a killed VM loses nothing acked. */
  journal: boolean;
  inodes?: number;
}

/** Creates a sparse ext4 image file with mkfs.ext4 (e2fsprogs), or throws naming the package. */
export function makeExt4(file: string, options: Ext4Options): void {
  rmSync(file, { force: true });
  writeFileSync(file, '');
  truncateSync(file, Math.ceil(options.sizeBytes / 4096) * 4096);
  const args = ['-q', '-F', '-m', '0', '-L', options.label, '-b', '4096'];
  if (!options.journal) args.push('-O', '^has_journal');
  if (options.inodes) args.push('-N', String(options.inodes));
  if (options.rootOwner) args.push('-E', `root_owner=${options.rootOwner}`);
  if (options.from) args.push('-d', options.from);
  args.push(file);
  const result = spawnSync('mkfs.ext4', args, { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH ?? ''}:${MKFS_PATH}` } });
  if (result.error || result.status !== 0) {
    rmSync(file, { force: true });
    const why = result.error ? `${result.error.message} (apt-get install e2fsprogs)` : result.stderr.trim();
    throw new TenementError(ErrorCodes.SPAWN_FAILED, `mkfs.ext4 ${file} failed: ${why}`);
  }
}
