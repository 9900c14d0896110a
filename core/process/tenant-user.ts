import { execFile } from 'node:child_process';
import { chmod, lstat, realpath, stat } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../errors.ts';
import type { SpawnSpec } from '../types.ts';

const CHOWN_PATH = '/usr/sbin:/usr/bin:/sbin:/bin';

export interface TenantUser {
  uid: number;
  gid: number;
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

/** A service's `user` as a number: what no instance uid may be (the allocator keeps clear of it). */
export function explicitUid(user: string | number | undefined): number | null {
  if (typeof user === 'number') return user;
  return user !== undefined && /^\d+$/.test(user) ? Number(user) : null;
}

/**
 * The uid a service's `user` names (a number, or a name from /etc/passwd with its primary group): every
 * instance of that service runs as it, the operator's choice. Never 0: tenants do not run as root.
 */
export function explicitUser(service: string, user: string | number): TenantUser {
  const uid = explicitUid(user);
  const resolved = uid !== null ? { uid, gid: uid } : fromPasswd(String(user));
  if (!resolved) throw new TenementError(ErrorCodes.SPAWN_FAILED, `services.${service}.user: no user '${user}' in /etc/passwd`);
  if (resolved.uid === 0 || resolved.gid === 0) {
    throw new TenementError(ErrorCodes.SPAWN_FAILED, `services.${service}.user: tenants never run as root (uid/gid 0)`);
  }
  return resolved;
}

/**
 * The uid a runtime starts the instance as: null when Tenement is not root (the tenant is Tenement's own
 * unprivileged user), else `spec.user`, resolved by the kernel (docs/isolation.md). A spec without one is
 * refused rather than started as root.
 */
export function specUser(spec: Pick<SpawnSpec, 'service' | 'id' | 'user'>): TenantUser | null {
  if (process.getuid?.() !== 0) return null;
  if (!spec.user) {
    throw new TenementError(ErrorCodes.SPAWN_FAILED, `${spec.service}:${spec.id}: no tenant uid was resolved for it (SpawnSpec.user); a tenant never runs as root`);
  }
  if (spec.user.uid === 0 || spec.user.gid === 0) {
    throw new TenementError(ErrorCodes.SPAWN_FAILED, `${spec.service}:${spec.id}: tenants never run as root (uid/gid 0)`);
  }
  return spec.user;
}

/**
 * Gives a whole tree to the tenant's uid without following a single link: GNU chown -R -P walks with
 * descriptors (openat with O_NOFOLLOW, a device and inode check on each step down), so a tenant that swaps a
 * folder for a link to /etc while the walk runs gets nothing chowned outside its tree, which a walk by path
 * names cannot promise. Only what the tree's previous owner owns changes hands (`--from`): a hard link to a
 * file of root or of another account, planted in the tree, keeps its owner. Entries it could not change (one
 * deleted meanwhile) are left; the root itself must change.
 */
async function chownTree(dir: string, user: TenantUser): Promise<void> {
  const previous = (await lstat(dir)).uid;
  const args = ['-R', '-P', '-h', `--from=${previous}`, '--', `${user.uid}:${user.gid}`, dir];
  await new Promise<void>((resolve) => {
    execFile('chown', args, { env: { PATH: CHOWN_PATH } }, () => resolve());
  });
  const root = await lstat(dir);
  if (root.uid !== user.uid || root.gid !== user.gid) {
    throw new TenementError(ErrorCodes.SPAWN_FAILED, `cannot give ${dir} to the tenant uid ${user.uid}: chown -R left it owned by ${root.uid}:${root.gid}`);
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
