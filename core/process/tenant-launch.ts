import { accessSync, constants } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../errors.ts';
import { assertReachable, type TenantUser } from './tenant-user.ts';

/** System folders: reachable by every uid, unlike a home folder (/root/.pyenv/shims is 0700 under /root). */
export const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The system folders plus the folder of the node running Tenement (apps start `node`, wherever it is installed). */
export function tenantSearchPath(): string {
  const nodeBin = path.dirname(process.execPath);
  return SYSTEM_PATH.split(':').includes(nodeBin) ? SYSTEM_PATH : `${nodeBin}:${SYSTEM_PATH}`;
}

/** The first executable called `name` on `searchPath`, or null. A name with a slash is taken as a path. */
export function findProgram(name: string, searchPath: string, cwd: string): string | null {
  const candidates = name.includes('/') ? [path.resolve(cwd, name)] : searchPath.split(':').filter(Boolean).map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return null;
}

/**
 * The absolute path of the program a tenant runs. Without a tenant uid (Tenement is not root): found on
 * Tenement's own PATH, as a shell would. With one: found on the tenant's PATH first (system folders, which
 * every uid can reach), then on Tenement's; the uid must be able to walk to it and execute it, or the spawn
 * fails naming the folder in the way and the fix, rather than the app dying with a bare EACCES.
 */
export async function resolveTenantProgram(spec: { service: string; id: string; command: string; cwd: string }, user: TenantUser | null): Promise<string> {
  const cwd = path.resolve(spec.cwd);
  const hostPath = process.env.PATH ?? '';
  const program = user
    ? (findProgram(spec.command, tenantSearchPath(), cwd) ?? findProgram(spec.command, hostPath, cwd))
    : (findProgram(spec.command, hostPath, cwd) ?? findProgram(spec.command, tenantSearchPath(), cwd));
  if (!program) {
    throw new TenementError(ErrorCodes.SPAWN_FAILED, `cannot start ${spec.service}:${spec.id}: command not found: ${spec.command} (cwd ${cwd})`);
  }
  if (!user) return program;
  try {
    await assertReachable(path.dirname(program), user, 'the program folder');
  } catch (error) {
    throw new TenementError(
      ErrorCodes.SPAWN_FAILED,
      `cannot start ${spec.service}:${spec.id}: ${spec.command} resolves to ${program}, which the tenant uid ${user.uid} cannot reach ` +
        `(${(error as Error).message}). Install it in a system folder (${SYSTEM_PATH.split(':').slice(2, 4).join(', ')}), ` +
        `give the service the full path of a copy the tenant can reach, or set the service's 'user' to one that can`,
      { cause: error },
    );
  }
  const info = await stat(program);
  const executable =
    (info.uid === user.uid && (info.mode & 0o100) !== 0) || (info.gid === user.gid && (info.mode & 0o010) !== 0) || (info.mode & 0o001) !== 0;
  if (!executable) {
    throw new TenementError(
      ErrorCodes.SPAWN_FAILED,
      `cannot start ${spec.service}:${spec.id}: ${program} is not executable by the tenant uid ${user.uid} (mode ${(info.mode & 0o777).toString(8)}; chmod o+x ${program})`,
    );
  }
  return program;
}

/**
 * What a tenant's environment holds, and nothing else: Tenement's own (API tokens, cloud credentials, SSH agent)
 * is not passed on. PATH is the tenant's search path when it runs as another uid (only folders it can reach),
 * else Tenement's own PATH (the same user: a virtualenv or nvm on it keeps working). The service's env, PORT,
 * HOST, DATA_DIR, TENEMENT_SERVICE and TENEMENT_INSTANCE (spec.env) come last and win.
 */
export function tenantEnv(spec: { env: Record<string, string>; dataDir: string }, user: TenantUser | null): Record<string, string> {
  return {
    PATH: user ? tenantSearchPath() : (process.env.PATH ?? SYSTEM_PATH),
    HOME: spec.dataDir,
    LANG: process.env.LANG ?? 'C.UTF-8',
    ...spec.env,
  };
}

/**
 * setpriv arguments that make the tenant `user` before it execs the program: real and effective uid and gid,
 * no supplementary groups, empty inheritable and bounding capability sets (a setuid-root binary it runs gets
 * no capability either) and no_new_privs (setuid bits are ignored altogether). Leaving root clears the
 * permitted, effective and ambient sets, so CapEff is 0.
 */
export function dropPrivilegesArgs(user: TenantUser): string[] {
  return [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--inh-caps=-all', '--bounding-set=-all', '--no-new-privs'];
}

/** setpriv (util-linux) from the system folders or PATH; TNM_ERR_TIER_UNAVAILABLE naming the package when missing. */
export function findSetpriv(tier: string): string {
  const setpriv = findProgram('setpriv', SYSTEM_PATH, '/') ?? findProgram('setpriv', process.env.PATH ?? '', '/');
  if (!setpriv) {
    throw new TenementError(
      ErrorCodes.TIER_UNAVAILABLE,
      `the '${tier}' tier run as root needs setpriv to drop to the tenant's uid, and it is not installed: apt-get install util-linux`,
    );
  }
  return setpriv;
}
