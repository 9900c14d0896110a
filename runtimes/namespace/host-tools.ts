import { realpathSync } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { findProgram } from '../../core/process/tenant-launch.ts';

/** Directory a program is installed in: `/opt/node-v20/bin/node` -> `/opt/node-v20` (its lib/ goes along). */
export function installRoot(program: string): string {
  const real = realpathSync(program);
  const dir = path.dirname(real);
  return path.basename(dir) === 'bin' ? path.dirname(dir) : dir;
}

/** bwrap (and setpriv, which drops root before it) from the host PATH, or TNM_ERR_TIER_UNAVAILABLE. */
export function hostTools(asRoot: boolean): { bwrap: string; setpriv: string | null } {
  const searchPath = process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin';
  const bwrap = findProgram('bwrap', searchPath, '/');
  if (!bwrap) {
    throw new TenementError(
      ErrorCodes.TIER_UNAVAILABLE,
      "the 'namespace' tier needs bubblewrap (bwrap), which is not on PATH: apt-get install bubblewrap",
    );
  }
  if (!asRoot) return { bwrap, setpriv: null };
  const setpriv = findProgram('setpriv', searchPath, '/');
  if (!setpriv) {
    throw new TenementError(
      ErrorCodes.TIER_UNAVAILABLE,
      "the 'namespace' tier run as root needs setpriv to drop to the tenant's uid, which is not on PATH: apt-get install util-linux",
    );
  }
  return { bwrap, setpriv };
}
