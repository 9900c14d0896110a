import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { spawnGroup } from '../../core/process/spawn-group.ts';
import { processesOwnListener } from '../../core/process/listener-owner.ts';
import { processTree, processesStats } from '../../core/process/tree.ts';
import { SYSTEM_PATH, resolveTenantProgram, tenantEnv } from '../../core/process/tenant-launch.ts';
import { assertReachable, prepareDataDir, specUser } from '../../core/process/tenant-user.ts';
import type { ExitInfo, RunningHandle, SpawnSpec } from '../../core/types.ts';
import { ociSpec, sandboxHostname } from './oci-spec.ts';
import { globalFlags, runsc, sandboxFlags, type SandboxPaths } from './runsc.ts';
import { killAll, treeOwnsSocket, waitGone } from './sandbox-tree.ts';
import { destroyWarm, warmProcesses, type WarmPool, type WarmSandbox } from './warm-pool.ts';

export interface SandboxSettings {
  runsc: string;
  dataRoot: string;
  paths: SandboxPaths;
  /** Booted, empty sandboxes a start may use instead of booting its own (absent: always boot). */
  pool?: WarmPool;
}

const slug = (text: string): string => text.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 24);

/**
 * A container id unique per run: a restart or a wake never meets the previous run's state, even while that
 * is still being deleted. runsc accepts [\w+.-]; the sentry's control socket name includes the id, so it
 * stays short.
 */
export function containerId(service: string, id: string): string {
  return `${slug(service)}-${slug(id)}-${randomBytes(4).toString('hex')}`;
}

/** Whether runsc still keeps state for the container (an attached `runsc run` deletes its own on exit). */
function hasState(state: string, id: string): boolean {
  try {
    return readdirSync(state).some((name) => name.startsWith(`${id}_`) || name === id);
  } catch {
    return false;
  }
}

/**
 * Host tasks a sandbox may need for `tenantTasks` tasks of its tenant: runsc, the gofer and the sentry are Go
 * programs with threads of their own (about 40 together with an idle node app), and under ptrace each tenant
 * process costs the host up to about nine (its stub process and the sentry threads that trace it; measured:
 * 53 `sleep` children took the host from 40 to 499 tasks).
 */
export const hostTasksFor = (tenantTasks: number): number => 10 * tenantTasks + 128;

/**
 * Starts one instance as a gVisor container: writes its bundle, then `runsc run` (attached: it stays the
 * instance's leader, so spawnGroup's log capture, cgroup joining, exit detection and stop apply as for any
 * local process). The tenant is the instance's uid (spec.user) when Tenement is root, with no capabilities.
 */
export async function spawnSandbox(spec: SpawnSpec, settings: SandboxSettings): Promise<RunningHandle> {
  const dataRoot = path.resolve(settings.dataRoot);
  const cwd = path.resolve(spec.cwd);
  const tenant = specUser(spec);
  const program = await resolveTenantProgram(spec, tenant);
  if (tenant) {
    await prepareDataDir(dataRoot, spec.dataDir, tenant);
    // The sentry checks permissions like Linux: an unreachable cwd would fail inside with a bare EACCES.
    await assertReachable(cwd, tenant, 'the working directory');
  }

  const { state, bundles } = settings.paths;
  const id = containerId(spec.service, spec.id);
  const hostname = sandboxHostname(spec.service, spec.id);
  // Sandbox-wide flags: a warm sandbox must have been booted with the same ones.
  const flags = sandboxFlags(spec.socketPath !== undefined);
  // limits.pids is enforced inside the sandbox (RLIMIT_NPROC: the tenant's fork gets EAGAIN). The host cgroup's
  // pids.max, set by the cgroups plugin to the same number, would count the sandbox's own threads too and kill
  // the sentry (the whole instance) long before the tenant reached its limit: it stays as a backstop, raised to
  // what a sandbox running that many tenant tasks needs on the host.
  if (spec.config.limits?.pids !== undefined) await spec.cgroup?.raisePidsMax(hostTasksFor(spec.config.limits.pids));
  const warm = await adoptWarm(spec, settings, flags, hostname);
  const bundle = path.join(bundles, id);
  try {
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    const config = ociSpec({
      program,
      args: spec.args,
      cwd,
      env: tenantEnv(spec, tenant),
      dataRoot,
      dataDir: spec.dataDir,
      hostname,
      user: tenant ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
      ...(spec.netns ? { netns: spec.netns } : {}),
      ...(spec.resolvConf ? { resolvConf: spec.resolvConf } : {}),
      ...(spec.config.limits?.pids !== undefined ? { maxTasks: spec.config.limits.pids } : {}),
      ...(warm ? { role: { kind: 'container' as const, sandboxId: warm.id } } : {}),
    });
    await writeFile(path.join(bundle, 'config.json'), JSON.stringify(config, null, 2), { mode: 0o600 });
  } catch (error) {
    if (warm) await destroyWarm(settings.runsc, settings.paths, warm);
    await rm(bundle, { recursive: true, force: true });
    throw error;
  }

  // Gone once per run, whichever comes first: the stop, or the exit of a crashed or finished app.
  let cleaning: Promise<void> | null = null;
  const cleanUp = (): Promise<void> =>
    (cleaning ??= (async () => {
      // A warm sandbox served this run only: it goes with it (its idle root container would keep it up).
      if (warm) await destroyWarm(settings.runsc, settings.paths, warm);
      // The sandbox is dead by now: deleting its state needs no control socket, hence no netns.
      if (hasState(state, id)) await runsc(settings.runsc, state, ['delete', '-force', id]);
      await rm(bundle, { recursive: true, force: true });
    })());

  const control = (signal: 'SIGTERM' | 'SIGKILL') => runsc(settings.runsc, state, ['kill', id, signal], spec.netns);
  const args = [...globalFlags(state), ...flags, 'run', '--bundle', bundle, id];
  // The instance's host processes: `runsc run` and its gofer, plus, in a warm sandbox, that sandbox's sentry,
  // stubs and root gofer (which are not below `runsc run`).
  const processes = (leader: number): number[] => (warm ? [...processTree(leader), ...warmProcesses(warm)] : processTree(leader));
  // runsc's own environment: the ids the orphan scan of a later run recognises, nothing of Tenement's.
  const launcherEnv = {
    PATH: SYSTEM_PATH,
    DATA_DIR: spec.dataDir,
    ...(spec.env.TENEMENT_SERVICE ? { TENEMENT_SERVICE: spec.env.TENEMENT_SERVICE } : {}),
    ...(spec.env.TENEMENT_INSTANCE ? { TENEMENT_INSTANCE: spec.env.TENEMENT_INSTANCE } : {}),
  };

  let handle: RunningHandle;
  try {
    handle = await spawnGroup(
      {
        ...spec,
        onExit(exit: ExitInfo) {
          spec.onExit(exit);
          void cleanUp();
        },
      },
      { program: settings.runsc, args, env: launcherEnv },
      {
        // The app gets SIGTERM inside the sandbox; when it exits, `runsc run` exits with its status.
        terminate(leader) {
          void control('SIGTERM').then((result) => {
            // Not started far enough to take signals: ending runsc ends the sentry (parent-death signal).
            if (!result.ok) {
              try {
                process.kill(leader, 'SIGTERM');
              } catch {
                // Already gone.
              }
            }
          });
        },
        ownsListener: (leader, port, netDir) => processesOwnListener(processes(leader), port, netDir),
        ownsSocket: (leader, socketPath, netDir) => treeOwnsSocket(processes(leader), socketPath, netDir),
        stats: (leader) => processesStats(leader, processes(leader)),
      },
    );
  } catch (error) {
    if (warm) await destroyWarm(settings.runsc, settings.paths, warm);
    await rm(bundle, { recursive: true, force: true });
    throw error;
  }

  const leader = handle.pid!;
  const stopGroup = handle.stop.bind(handle);
  return {
    ...handle,
    async stop({ graceMs }) {
      const tree = processes(leader);
      // After the grace, the container is killed through runsc first (spawnGroup then kills runsc itself).
      const hard = graceMs > 0 ? setTimeout(() => void control('SIGKILL'), Math.max(0, graceMs - 50)) : null;
      hard?.unref();
      const exit = await stopGroup({ graceMs });
      if (hard) clearTimeout(hard);
      // A warm sandbox's sentry outlives the instance's container (its root container idles): end it now.
      if (warm) await cleanUp();
      // The sentry and its stubs are outside runsc's process group: they die with runsc, a moment later.
      if (!(await waitGone(tree, Date.now() + 3_000))) {
        killAll(tree);
        await waitGone(tree, Date.now() + 5_000);
      }
      await cleanUp();
      return exit;
    },
  };
}

/**
 * A warm sandbox for this start, made the instance's: its processes join the instance's cgroups and it takes
 * the instance's host name. Null (the start boots its own sandbox) when there is none, when the instance has
 * a network namespace of its own (warm sandboxes are in the host's), or when adopting it failed.
 */
async function adoptWarm(spec: SpawnSpec, settings: SandboxSettings, flags: readonly string[], hostname: string): Promise<WarmSandbox | null> {
  const warm = spec.netns ? null : (settings.pool?.take(flags) ?? null);
  if (!warm) return null;
  // Independent of each other, and both must be done before the instance's container starts.
  const [joined, named] = await Promise.all([
    !spec.cgroupProcs?.length || joinCgroups(spec.cgroupProcs, () => warmProcesses(warm)),
    settings.pool!.name(warm, hostname),
  ]);
  if (joined && named) return warm;
  await destroyWarm(settings.runsc, settings.paths, warm);
  return null;
}

/**
 * Moves a warm sandbox's running processes into the instance's cgroups (what a cold start gets by starting
 * runsc in them): everything they start from now on, the app's stubs included, is counted and limited there.
 * Memory the idle sandbox already had stays charged where it was booted. False when a cgroup cannot be joined.
 *
 * The sandbox may be forking while it is moved (the ptrace platform makes stubs from a stub of its own): a
 * process forked after the tree was read, by a parent not yet moved, would stay outside with everything it later
 * holds (seen: the app's stub, hoarding gigabytes past a 256 MB limit). So the tree is read again until a reading
 * finds nothing new: then every process alive was moved, and whatever they fork is born inside.
 */
async function joinCgroups(procsFiles: readonly string[], tree: () => readonly number[]): Promise<boolean> {
  const moved = new Set<number>();
  try {
    for (let round = 0; round < JOIN_ROUNDS; round++) {
      const fresh = tree().filter((pid) => !moved.has(pid));
      if (fresh.length === 0) return true;
      for (const pid of fresh) {
        for (const file of procsFiles) await writeFile(file, String(pid));
        moved.add(pid);
      }
    }
    // Still forking after this many rounds: not a sandbox at rest, so not one to hand out.
    return false;
  } catch {
    return false;
  }
}

/** Readings of a warm sandbox's tree before giving up on moving it (an idle one settles in two). */
const JOIN_ROUNDS = 8;
