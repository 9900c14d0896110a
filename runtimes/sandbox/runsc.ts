import { execFile } from 'node:child_process';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { SYSTEM_PATH, findProgram } from '../../core/process/tenant-launch.ts';
import { enterNetns } from '../../core/process/netns-enter.ts';

/** Where this Tenement keeps its gVisor files: bundles and runsc's own state, inside its data directory. */
export interface SandboxPaths {
  /** `{dataDir}/.sandbox` */
  base: string;
  /** runsc --root: the containers of this data directory only (two servers or tests never see each other's). */
  state: string;
  /** One OCI bundle per container id. */
  bundles: string;
}

export function sandboxPaths(dataDir: string): SandboxPaths {
  const base = path.join(path.resolve(dataDir), '.sandbox');
  return { base, state: path.join(base, 'state'), bundles: path.join(base, 'bundles') };
}

/**
 * runsc: the configured path, else from PATH or the system folders; TNM_ERR_TIER_UNAVAILABLE naming the
 * package when it is not there.
 */
export function findRunsc(configured?: string): string {
  const runsc = configured
    ? findProgram(configured, process.env.PATH ?? SYSTEM_PATH, process.cwd())
    : (findProgram('runsc', process.env.PATH ?? '', '/') ?? findProgram('runsc', SYSTEM_PATH, '/'));
  if (!runsc) {
    const where = configured ? `at ${configured} (the runtime-sandbox plugin's runsc option)` : 'on PATH';
    throw new TenementError(
      ErrorCodes.TIER_UNAVAILABLE,
      `the 'sandbox' tier needs gVisor's runsc, which is not installed ${where}: apt-get install runsc`,
    );
  }
  return runsc;
}

/**
 * Flags every runsc command of this data directory gets. ptrace is the platform that works here (KVM hangs
 * in a nested VM, systrap does not exist in Debian's 20221219). --network=host: runsc's own netstack refuses
 * to start on this kernel, so the sandbox uses the network namespace it is put in (the host's, or the
 * instance's private one). --ignore-cgroups: runsc would otherwise move the sandbox into cgroups of its own,
 * out of the instance's (the cgroups plugin's limits), and leave them behind when killed.
 */
export function globalFlags(state: string): string[] {
  return [`--root=${state}`, '--platform=ptrace', '--network=host', '--ignore-cgroups'];
}

/**
 * Flags that hold for a whole sandbox, by how the instance listens: on a Unix socket, the gofer must create
 * the app's socket on the host (--host-uds=create), or it would only exist inside the sentry.
 */
export function sandboxFlags(listensOnSocket: boolean): string[] {
  return listensOnSocket ? ['--host-uds=create'] : [];
}

export interface RunscResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/**
 * Runs one runsc control command (kill, delete, state, list). A sandbox in a private network namespace is
 * only reachable from inside it (its control socket is an abstract Unix socket, which is per namespace), so
 * the command enters `netns` first.
 */
export function runsc(runscPath: string, state: string, args: readonly string[], netns?: string, timeoutMs = 10_000): Promise<RunscResult> {
  const full = [...globalFlags(state), ...args];
  const start = netns ? enterNetns(netns, runscPath, full) : { command: runscPath, args: full };
  return new Promise((resolve) => {
    // Callers expect an answer, never a rejection: a spawn Node refuses at once (EMFILE, ENOMEM) is a failed run too.
    try {
      execFile(start.command, start.args, { timeout: timeoutMs, env: { PATH: SYSTEM_PATH }, encoding: 'utf8' }, (error, stdout, stderr) => {
        resolve({ ok: !error, stdout, stderr: stderr.trim() || (error ? error.message : '') });
      });
    } catch (error) {
      resolve({ ok: false, stdout: '', stderr: (error as Error).message });
    }
  });
}

/** Container ids in a state dir (`runsc list -quiet`); [] when runsc cannot list it. */
export async function listContainers(runscPath: string, state: string): Promise<string[]> {
  const result = await runsc(runscPath, state, ['list', '-quiet']);
  if (!result.ok) return [];
  return result.stdout.split('\n').map((line) => line.trim()).filter(Boolean);
}

/** The host pid of a container's sandbox process (`runsc state`), or null when it is not running. */
export async function sandboxPid(runscPath: string, state: string, id: string): Promise<number | null> {
  const result = await runsc(runscPath, state, ['state', id]);
  if (!result.ok) return null;
  try {
    const pid = (JSON.parse(result.stdout) as { pid?: number }).pid;
    return typeof pid === 'number' && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}
