import { createHash } from 'node:crypto';
import path from 'node:path';
import { definePlugin, ErrorCodes, TenementError } from '../../sdk/index.ts';
import type { ExitInfo, InstanceEvent, InstanceState, SpawnSpec } from '../../sdk/index.ts';
import { removeTree } from './cgroupfs.ts';
import { TOP, detectCgroups, missingFor, neededControllers, type CgroupHost } from './detect.ts';
import { InstanceCgroup, type Limits } from './instance-cgroup.ts';
import { limitsRoute } from './routes.ts';

/** States in which an instance's process has ended: its cgroup is emptied and removed then. */
const ENDED: ReadonlySet<InstanceState> = new Set(['restarting', 'failed', 'stopped', 'hibernated']);

/**
 * Each Tenement (one data directory) owns `tenement/<scope>` in every hierarchy, so two servers on one host,
 * or tests running side by side, never clean up each other's cgroups.
 */
export function cgroupScope(dataDir: string): string {
  return `${TOP}/${createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12)}`;
}

function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1 && value % 1024 === 0) {
    value /= 1024;
    unit += 1;
  }
  return `${value} ${units[unit]}`;
}

/**
 * Every instance of a tier whose runtime joins cgroups gets its own cgroup, with or without `limits`: stop and
 * clean-up kill by cgroup, so a daemon that left the process group (setsid, double fork) goes too. On top:
 * memory, CPU and pids limits (v2 when the unified hierarchy offers the controllers, v1 otherwise), OOM-kill
 * detection (an `oom` event, and `oomKills` in every instance view), and CPU/memory figures from the cgroup.
 */
export interface CgroupsOptions {
  /** Where the cgroup hierarchies are mounted (default /sys/fs/cgroup). */
  root?: string;
}

export default definePlugin<CgroupsOptions | undefined>({
  name: 'cgroups',
  version: '1.0.0',
  kernel: '^1',
  async setup(kernel, options) {
    const host: CgroupHost = detectCgroups(options?.root);
    const scope = cgroupScope(kernel.config.settings.dataDir);
    const live = new Map<string, InstanceCgroup>();
    const cleaning = new Map<string, Promise<void>>();
    const oomKills = new Map<string, number>();
    limitsRoute(kernel, host, live, oomKills);

    // Cgroups of a previous run on this data directory (a crash, a kill -9): their processes go, then the tree.
    for (const root of new Set(Object.values(host.roots))) {
      const left = await removeTree(path.join(root, scope));
      if (left.length > 0) kernel.log.warn({ left }, 'cgroups: could not remove cgroups left by a previous run');
    }
    if (host.version !== null) kernel.log.debug({ version: host.version, roots: host.roots, problems: host.problems }, 'cgroups');

    const release = (key: string): void => {
      const cgroup = live.get(key);
      if (!cgroup) return;
      live.delete(key);
      const run = (cleaning.get(key) ?? Promise.resolve())
        .then(() => cgroup.destroy())
        .then((left) => {
          if (left.length > 0) kernel.log.warn({ instance: key, left }, 'cgroups: could not remove cgroup');
        })
        .catch((error: unknown) => kernel.log.warn({ instance: key, err: String(error) }, 'cgroups: clean-up failed'))
        .finally(() => {
          if (cleaning.get(key) === run) cleaning.delete(key);
        });
      cleaning.set(key, run);
    };

    let warnedNoCgroups = false;
    kernel.hooks.beforeSpawn.tapPromise('cgroups', async (spec: SpawnSpec): Promise<SpawnSpec> => {
      const limits: Limits = spec.config.limits ?? {};
      const needed = neededControllers(limits);
      const key = `${spec.service}:${spec.id}`;
      const traits = kernel.tierTraits(spec.tier);
      if (needed.length === 0) {
        // No limit to enforce: a cgroup only to kill by (and measure). Tiers that do not join cgroups, and hosts
        // that offer none (not root, read-only /sys), run without one, as before.
        if (traits.cgroups === 'none') return spec;
        if (Object.keys(host.roots).length === 0) {
          if (!warnedNoCgroups) kernel.log.debug({ problems: host.problems }, 'cgroups: none usable; instances are killed by process group only');
          warnedNoCgroups = true;
          return spec;
        }
      } else if (traits.cgroups !== 'limits') {
        // The runtime must enter the cgroups from outside its sandbox (spec.cgroupProcs), and they must bound the app.
        const bounded = kernel.providedTiers().filter((tier) => kernel.tierTraits(tier).cgroups === 'limits');
        throw new TenementError(
          ErrorCodes.TIER_UNAVAILABLE,
          `${key}: limits are enforced by cgroup for the ${bounded.join(', ')} tiers; the '${spec.tier}' runtime ${traits.cgroups === 'none' ? 'does not put its instances into cgroups' : 'does not let cgroup limits bound its instances'}`,
          { status: 503 },
        );
      }
      const missing = needed.length > 0 ? missingFor(host, needed) : null;
      if (missing) {
        throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `${key} has limits, but this host cannot enforce them: ${missing}`, {
          status: 503,
        });
      }
      // The previous run's cgroup (same path) must be gone before this one is made.
      release(key);
      await cleaning.get(key);
      const cgroup = new InstanceCgroup(host, `${scope}/${spec.service}/${spec.id}`, limits);
      try {
        cgroup.create();
      } catch (error) {
        await cgroup.destroy().catch(() => undefined);
        if (needed.length === 0) {
          kernel.log.warn({ instance: key, err: (error as Error).message }, 'cgroups: cannot create the instance cgroup; it is killed by process group only');
          return spec;
        }
        throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `${key}: cannot set up its cgroup: ${(error as Error).message}`, {
          status: 503,
          cause: error,
        });
      }
      live.set(key, cgroup);
      const oomBefore = cgroup.oomKills() ?? 0;
      const onExit = spec.onExit;
      return {
        ...spec,
        cgroupProcs: cgroup.procsFiles,
        cgroup: { raisePidsMax: async (tasks: number) => cgroup.raisePidsMax(tasks) },
        onExit(exit: ExitInfo) {
          // Read before the supervisor moves on (and the cgroup is removed): the counter names the cause.
          const oomAfter = cgroup.oomKills();
          const instance = kernel.instances.get(spec.service, spec.id);
          if (instance && oomAfter !== null && oomAfter > oomBefore) {
            oomKills.set(key, (oomKills.get(key) ?? 0) + oomAfter - oomBefore);
            // Without a limit of its own, the kernel counts the kill here too when the host (or a parent cgroup) ran out.
            const why = limits.memory !== undefined ? `for exceeding its memory limit of ${formatBytes(limits.memory)}` : 'by the kernel: the host ran out of memory';
            kernel.emit(instance, 'oom', `killed ${why}`);
          }
          onExit(exit);
        },
      };
    });

    kernel.hooks.stateChange.tapPromise('cgroups', async (event: InstanceEvent) => {
      if (event.type === 'spawned') {
        // CPU and memory from the cgroup count every process of the instance, not just the main one.
        const instance = kernel.instances.getByKey(event.instance);
        const cgroup = live.get(event.instance);
        const handle = instance?.handle;
        if (!handle || !cgroup) return;
        const processStats = handle.stats.bind(handle);
        handle.stats = async () => {
          const own = await processStats();
          const usage = cgroup.usage();
          return { pid: own.pid, memoryBytes: usage.memoryBytes ?? own.memoryBytes, cpuSeconds: usage.cpuSeconds ?? own.cpuSeconds };
        };
        // The runtime's stop ends its process group (a graceful SIGTERM first); whatever left the group (a
        // setsid daemon) is still in the cgroup and is killed before the stop counts as done.
        const stopGroup = handle.stop.bind(handle);
        handle.stop = async (options) => {
          const exit = await stopGroup(options);
          await cgroup.empty();
          return exit;
        };
        return;
      }
      if (event.type === 'removed' || ENDED.has(event.to)) release(event.instance);
    });

    // Cached counts only: this runs for every instance view.
    kernel.hooks.describe.tapPromise('cgroups', async (instance, facts) => {
      facts.oomKills = oomKills.get(instance.key) ?? 0;
    });

    kernel.onClose(async () => {
      for (const key of [...live.keys()]) release(key);
      await Promise.all(cleaning.values());
      for (const root of new Set(Object.values(host.roots))) await removeTree(path.join(root, scope));
    });
  },
});
