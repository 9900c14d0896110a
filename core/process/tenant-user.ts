import { chmod, lchown, lstat, readdir, realpath, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../errors.ts';

export interface TenantUser {
  uid: number;
  gid: number;
}

/** FNV-1a, 32 bits: a stable spread of service names over the uid range (no state to keep). */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}

function fromPasswd(name: string): TenantUser | null {
  let text: string;
  try {
    text = readFileSync('/etc/passwd', 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const fields = line.split(':');
    if (fields[0] === name && fields.length >= 4) return { uid: Number(fields[2]), gid: Number(fields[3]) };
  }
  return null;
}

/**
 * The uid a service's tenants run as when Tenement is root: the service's `user` (a number, or a name from
 * /etc/passwd with its primary group), else `tenantUids.from + fnv1a(service) % size`. The hash keeps the uid
 * of a service the same across restarts and config edits (the DATA_DIRs stay owned by it); two services may
 * share a uid, which the mount namespace still keeps apart. Never 0: tenants do not run as root.
 */
export function tenantUser(service: string, user: string | number | undefined, range: { from: number; to: number }): TenantUser {
  let resolved: TenantUser | null;
  if (user === undefined) {
    const uid = range.from + (fnv1a(service) % (range.to - range.from + 1));
    resolved = { uid, gid: uid };
  } else if (typeof user === 'number' || /^\d+$/.test(user)) {
    resolved = { uid: Number(user), gid: Number(user) };
  } else {
    resolved = fromPasswd(user);
    if (!resolved) throw new TenementError(ErrorCodes.SPAWN_FAILED, `services.${service}.user: no user '${user}' in /etc/passwd`);
  }
  if (resolved.uid === 0 || resolved.gid === 0) {
    throw new TenementError(ErrorCodes.SPAWN_FAILED, `services.${service}.user: tenants never run as root (uid/gid 0)`);
  }
  return resolved;
}

/** lchown throughout: a tenant's symlink to a host file must never get that file chowned to the tenant. */
async function chownTree(dir: string, user: TenantUser): Promise<void> {
  await lchown(dir, user.uid, user.gid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(full, user);
    else await lchown(full, user.uid, user.gid).catch(() => undefined);
  }
}

/**
 * Gives the DATA_DIR to the tenant's uid (recursively when it is not its owner yet: first use, or a changed
 * `user`), mode 0700, and lets the uid reach it: the data dir and the folders between it and DATA_DIR get
 * o+x (search, not list). bwrap runs as that uid, so it must be able to walk to what it binds.
 */
export async function prepareDataDir(dataRoot: string, dataDir: string, user: TenantUser): Promise<void> {
  const info = await stat(dataDir);
  // DATA_DIR itself may be Tenement's link to a storage mount: resolve that one, follow nothing inside.
  if (info.uid !== user.uid || info.gid !== user.gid) await chownTree(await realpath(dataDir), user);
  await chmod(dataDir, 0o700);
  const relative = path.relative(dataRoot, path.dirname(dataDir));
  if (relative.startsWith('..')) return;
  let dir = dataRoot;
  for (const part of ['', ...relative.split(path.sep).filter(Boolean)]) {
    dir = part ? path.join(dir, part) : dir;
    const mode = (await lstat(dir)).mode;
    if ((mode & 0o001) === 0) await chmod(dir, (mode & 0o7777) | 0o001);
  }
  await assertReachable(dataRoot, user, 'the data directory');
}

/** Every folder from / down to `dir` must be searchable by the tenant's uid, or bwrap cannot bind it. */
export async function assertReachable(dir: string, user: TenantUser, what: string): Promise<void> {
  const parts = path.resolve(dir).split(path.sep).filter(Boolean);
  let current = '/';
  for (const part of ['', ...parts]) {
    current = part ? path.join(current, part) : current;
    const info = await stat(current);
    const searchable =
      (info.uid === user.uid && (info.mode & 0o100) !== 0) ||
      (info.gid === user.gid && (info.mode & 0o010) !== 0) ||
      (info.mode & 0o001) !== 0;
    if (!searchable) {
      throw new TenementError(
        ErrorCodes.SPAWN_FAILED,
        `${what} ${dir} is not reachable by the tenant uid ${user.uid}: ${current} is not searchable (chmod o+x ${current})`,
      );
    }
  }
}
