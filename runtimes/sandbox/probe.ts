import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { SYSTEM_PATH } from '../../core/process/tenant-launch.ts';
import type { TierProbe } from '../../core/types.ts';
import { ociSpec } from './oci-spec.ts';
import { findRunsc, globalFlags, runsc, type SandboxPaths } from './runsc.ts';

/** nobody: the probe container needs no file of its own. */
const PROBE_USER = { uid: 65_534, gid: 65_534 };

/**
 * Whether gVisor really works here: runsc on PATH is not enough (the KVM platform hangs in a nested VM, the
 * netstack refuses this kernel), so a tiny container (`/bin/true`, about half a second) is started with the
 * same flags the instances get. The reason names runsc's own error and the fix.
 */
export async function probeSandbox(runscPath: string | undefined, paths: SandboxPaths): Promise<TierProbe> {
  let binary: string;
  try {
    binary = findRunsc(runscPath);
  } catch (error) {
    return { available: false, reason: (error as Error).message };
  }
  const id = `probe-${randomBytes(4).toString('hex')}`;
  const bundle = path.join(paths.bundles, id);
  try {
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    const spec = ociSpec({
      program: '/bin/true',
      args: [],
      cwd: '/',
      env: { PATH: SYSTEM_PATH },
      dataRoot: paths.base,
      dataDir: bundle,
      hostname: 'probe',
      user: process.getuid?.() === 0 ? PROBE_USER : { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
    });
    await writeFile(path.join(bundle, 'config.json'), JSON.stringify(spec));
    const started = performance.now();
    const failure = await new Promise<string | null>((resolve) => {
      execFile(binary, [...globalFlags(paths.state), 'run', '--bundle', bundle, id], { timeout: 20_000, env: { PATH: SYSTEM_PATH } }, (error, _stdout, stderr) => {
        if (!error) return resolve(null);
        const detail = stderr.toString().trim().split('\n').pop() || error.message;
        resolve((error as NodeJS.ErrnoException).code === 'ENOENT' ? `${binary} not found` : detail);
      });
    });
    if (failure !== null) {
      return {
        available: false,
        reason: `runsc (${binary}) cannot start a sandbox on this host: ${failure}. Needs root, ptrace and a working runsc: apt-get install runsc`,
      };
    }
    return { available: true, note: `gVisor ${binary}, platform ptrace, started a container in ${Math.round(performance.now() - started)} ms` };
  } finally {
    await runsc(binary, paths.state, ['delete', '-force', id]).catch(() => undefined);
    await rm(bundle, { recursive: true, force: true }).catch(() => undefined);
  }
}
