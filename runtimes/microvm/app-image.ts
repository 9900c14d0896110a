import { createHash } from 'node:crypto';
import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { makeExt4 } from './ext4.ts';

const MAX_FILES = 100_000;
const MAX_BYTES = 4 * 1024 ** 3;

interface TreeSummary {
  key: string;
  files: number;
  bytes: number;
}

/** Walks the tree once: a key from every path, size, mode and mtime, and the totals that size the image. */
function summarise(root: string, service: string): TreeSummary {
  const hash = createHash('sha256');
  let files = 0;
  let bytes = 0;
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir).sort()) {
      const full = path.join(dir, entry);
      const info = lstatSync(full);
      files += 1;
      bytes += info.isFile() ? info.size : 0;
      if (files > MAX_FILES || bytes > MAX_BYTES) {
        throw new TenementError(
          ErrorCodes.SPAWN_FAILED,
          `services.${service}.cwd: ${root} is too big to share with a microVM (over ${MAX_FILES} files or ${MAX_BYTES / 1024 ** 3} GiB)`,
        );
      }
      hash.update(`${path.relative(root, full)}\0${info.mode}\0${info.size}\0${info.mtimeMs}\0`);
      if (info.isDirectory()) walk(full);
    }
  };
  walk(root);
  return { key: hash.digest('hex').slice(0, 16), files, bytes };
}

/**
 * The service's working directory as a read-only ext4 image in `{guestDir}/apps/`, mounted at the same path
 * in the guest. Keyed by the tree's contents, so instances of a service share one image until a file changes;
 * built into a temporary name and renamed, so concurrent spawns never see half an image. Service names are
 * DNS labels, so they are safe in a file name and a regular expression.
 */
export function appImage(guestDir: string, cwd: string, service: string): string {
  const summary = summarise(cwd, service);
  const file = path.join(guestDir, 'apps', `${service}-${summary.key}.ext4`);
  if (existsSync(file)) return file;
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  const temp = `${file}.tmp-${process.pid}-${Date.now()}`;
  const sizeBytes = Math.ceil(summary.bytes * 1.2) + summary.files * 4096 + 8 * 1024 * 1024;
  makeExt4(temp, { label: 'tnm-app', sizeBytes, from: cwd, journal: false, inodes: summary.files + 256 });
  chmodSync(temp, 0o644);
  renameSync(temp, file);
  // Older images of this service go (a running VM keeps its open file until it stops).
  const older = new RegExp(`^${service}-[0-9a-f]{16}\\.ext4$`);
  for (const entry of readdirSync(path.dirname(file))) {
    if (older.test(entry) && path.join(path.dirname(file), entry) !== file) rmSync(path.join(path.dirname(file), entry), { force: true });
  }
  return file;
}
