/**
 * Host side of the `tenement:http/tenant-data` import: flat files in the tenant's DATA_DIR and nowhere else.
 * Names are single path components from a small alphabet, so `..`, `/` and absolute paths cannot be spelled;
 * symlinks are never followed (O_NOFOLLOW on open, rename replaces a link rather than its target), so a link
 * planted in the directory cannot lead out of it. Errors name the problem, never a host path.
 * Runs synchronously in a pool worker: the guest's call is synchronous.
 */
import { closeSync, constants, fstatSync, mkdirSync, openSync, readSync, readdirSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

/** jco's lowering of a WIT `result`: returned, not thrown, so the guest gets the error value. */
export type WitResult<T> = { tag: 'ok'; val: T } | { tag: 'err'; val: string };

/** One file's size limit, both ways: the data goes through guest memory in one piece. */
export const MAX_FILE_BYTES = 16 * 1024 * 1024;
const NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,254}$/;

const ok = <T>(val: T): WitResult<T> => ({ tag: 'ok', val });
const err = <T>(val: string): WitResult<T> => ({ tag: 'err', val });

function checkName(name: unknown): string | null {
  if (typeof name !== 'string' || !NAME.test(name) || name.includes('..')) {
    return `invalid name ${JSON.stringify(String(name)).slice(0, 80)}: expected 1 to 255 of A-Z a-z 0-9 . _ - (no '/', no '..', not starting with '.')`;
  }
  return null;
}

/** The errno code only (ENOENT, ELOOP, ...): enough to act on, and no host path in it. */
function ioError(op: string, error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ELOOP') return `${op}: refused to follow a symbolic link`;
  return `${op} failed: ${code ?? 'I/O error'}`;
}

export interface TenantDataImports {
  read(name: string): WitResult<Uint8Array | undefined>;
  write(name: string, data: Uint8Array): WitResult<undefined>;
  remove(name: string): WitResult<boolean>;
  names(): WitResult<string[]>;
}

export function tenantDataImports(dataDir: string | null): TenantDataImports {
  const noDir = 'this instance has no data directory';
  return {
    read(name) {
      if (!dataDir) return err(noDir);
      const bad = checkName(name);
      if (bad) return err(bad);
      let fd: number;
      try {
        fd = openSync(join(dataDir, name), constants.O_RDONLY | constants.O_NOFOLLOW);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return ok(undefined);
        return err(ioError('read', error));
      }
      try {
        const stat = fstatSync(fd);
        if (!stat.isFile()) return err('read: not a regular file');
        if (stat.size > MAX_FILE_BYTES) return err(`read: file is larger than ${MAX_FILE_BYTES} bytes`);
        const out = new Uint8Array(stat.size);
        let at = 0;
        while (at < out.length) {
          const n = readSync(fd, out, at, out.length - at, at);
          if (n === 0) break;
          at += n;
        }
        return ok(at === out.length ? out : out.subarray(0, at));
      } catch (error) {
        return err(ioError('read', error));
      } finally {
        closeSync(fd);
      }
    },

    write(name, data) {
      if (!dataDir) return err(noDir);
      const bad = checkName(name);
      if (bad) return err(bad);
      if (!(data instanceof Uint8Array)) return err('write: data must be bytes');
      if (data.length > MAX_FILE_BYTES) return err(`write: data is larger than ${MAX_FILE_BYTES} bytes`);
      // Written beside the target, then renamed over it: readers see the old or the new file, never half.
      const temp = join(dataDir, `.tenement-${randomBytes(6).toString('hex')}.tmp`);
      try {
        mkdirSync(dataDir, { recursive: true });
        const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        try {
          let at = 0;
          while (at < data.length) at += writeSync(fd, data, at, data.length - at);
        } finally {
          closeSync(fd);
        }
        renameSync(temp, join(dataDir, name));
        return ok(undefined);
      } catch (error) {
        try {
          unlinkSync(temp);
        } catch {
          // never created
        }
        return err(ioError('write', error));
      }
    },

    remove(name) {
      if (!dataDir) return err(noDir);
      const bad = checkName(name);
      if (bad) return err(bad);
      try {
        // unlink removes a symlink itself, never what it points to.
        unlinkSync(join(dataDir, name));
        return ok(true);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return ok(false);
        return err(ioError('remove', error));
      }
    },

    names() {
      if (!dataDir) return err(noDir);
      try {
        const entries = readdirSync(dataDir, { withFileTypes: true });
        return ok(entries.filter((e) => e.isFile() && checkName(e.name) === null).map((e) => e.name).sort());
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') return ok([]);
        return err(ioError('names', error));
      }
    },
  };
}
