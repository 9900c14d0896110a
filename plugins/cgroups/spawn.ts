import type { PluginContext } from '../../core/plugin-context.ts';
import { ErrorCodes, TenementError } from '../../sdk/index.ts';
import type { ExitInfo, RunningHandle, SpawnSpec } from '../../sdk/index.ts';
import type { CgroupSet } from './cgroup-set.ts';
import { missingFor, neededControllers, type CgroupHost } from './detect.ts';
import { InstanceCgroup, type Limits } from './instance-cgroup.ts';

/** What the spawn taps use of the plugin's context. */
export type SpawnContext = Pick<PluginContext, 'tiers' | 'instances' | 'lifecycle' | 'log'>;

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
 * A handle that delegates to the runtime's: CPU and memory from the cgroup count every process of the instance,
 * not just the main one; and a stop ends whatever left the process group (a setsid daemon), still in the cgroup,
 * before it counts as done. The runtime's own handle is left as it is.
 */
export function cgroupHandle(handle: RunningHandle, cgroup: InstanceCgroup): RunningHandle {
  return {
    ...handle,
    async stats() {
      const own = await handle.stats();
      const usage = cgroup.usage();
      return { pid: own.pid, memoryBytes: usage.memoryBytes ?? own.memoryBytes, cpuSeconds: usage.cpuSeconds ?? own.cpuSeconds };
    },
    async stop(options) {
      // The runtime's stop ends its process group (a graceful SIGTERM first).
      const exit = await handle.stop(options);
      await cgroup.empty();
      return exit;
    },
  };
}

/** The beforeSpawn and afterSpawn taps: a fresh cgroup for each run, and the handle wrapped around it. */
export class CgroupSpawns {
  private warnedNoCgroups = false;

  constructor(
    private readonly ctx: SpawnContext,
    private readonly host: CgroupHost,
    private readonly cgroups: CgroupSet,
  ) {}

  /** beforeSpawn: refuses limits nobody can enforce, makes the run's cgroup and points the spec at it. */
  async prepare(spec: SpawnSpec): Promise<SpawnSpec> {
    const limits: Limits = spec.config.limits ?? {};
    const needed = neededControllers(limits);
    const key = `${spec.service}:${spec.id}`;
    if (needed.length === 0) {
      if (!this.wantsKillCgroup(spec.tier)) return spec;
    } else {
      this.checkEnforceable(spec, key, needed);
    }
    // The previous run's cgroup (same path) must be gone before this one is made.
    await this.cgroups.clear(key);
    const cgroup = new InstanceCgroup(this.host, `${this.cgroups.scope}/${spec.service}/${spec.id}`, limits);
    try {
      cgroup.create();
    } catch (error) {
      await cgroup.destroy().catch(() => undefined);
      if (needed.length === 0) {
        this.ctx.log.warn({ instance: key, err: (error as Error).message }, 'cannot create the instance cgroup; it is killed by process group only');
        return spec;
      }
      throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `${key}: cannot set up its cgroup: ${(error as Error).message}`, {
        cause: error,
      });
    }
    this.cgroups.add(key, cgroup);
    return {
      ...spec,
      cgroupProcs: cgroup.procsFiles,
      cgroup: { raisePidsMax: async (tasks: number) => cgroup.raisePidsMax(tasks) },
      onExit: this.watchOom(spec, cgroup, limits),
    };
  }

  /** afterSpawn: the runtime's handle, wrapped when this run has a cgroup. */
  wrap(handle: RunningHandle, spec: SpawnSpec): RunningHandle {
    const cgroup = this.cgroups.get(`${spec.service}:${spec.id}`);
    return cgroup && spec.cgroupProcs ? cgroupHandle(handle, cgroup) : handle;
  }

  /**
   * No limit to enforce: a cgroup only to kill by (and measure). Tiers that do not join cgroups, and hosts that
   * offer none (not root, read-only /sys), run without one, as before.
   */
  private wantsKillCgroup(tier: string): boolean {
    if (this.ctx.tiers.traits(tier).cgroups === 'none') return false;
    if (Object.keys(this.host.roots).length > 0) return true;
    if (!this.warnedNoCgroups) this.ctx.log.debug({ problems: this.host.problems }, 'none usable; instances are killed by process group only');
    this.warnedNoCgroups = true;
    return false;
  }

  /** Limits need a tier whose runtime lets cgroups bound the app (spec.cgroupProcs), and controllers on this host. */
  private checkEnforceable(spec: SpawnSpec, key: string, needed: ReturnType<typeof neededControllers>): void {
    const traits = this.ctx.tiers.traits(spec.tier);
    if (traits.cgroups !== 'limits') {
      const bounded = this.ctx.tiers.provided().filter((tier) => this.ctx.tiers.traits(tier).cgroups === 'limits');
      throw new TenementError(
        ErrorCodes.TIER_UNAVAILABLE,
        `${key}: limits are enforced by cgroup for the ${bounded.join(', ')} tiers; the '${spec.tier}' runtime ${traits.cgroups === 'none' ? 'does not put its instances into cgroups' : 'does not let cgroup limits bound its instances'}`,
      );
    }
    const missing = missingFor(this.host, needed);
    if (missing) {
      throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `${key} has limits, but this host cannot enforce them: ${missing}`);
    }
  }

  /** The spec's onExit, preceded by an `oom` event when the kernel OOM-killed a process of this run. */
  private watchOom(spec: SpawnSpec, cgroup: InstanceCgroup, limits: Limits): (exit: ExitInfo) => void {
    const key = `${spec.service}:${spec.id}`;
    const oomBefore = cgroup.oomKills() ?? 0;
    const onExit = spec.onExit;
    return (exit) => {
      // Read before the supervisor moves on (and the cgroup is removed): the counter names the cause.
      const oomAfter = cgroup.oomKills();
      const instance = this.ctx.instances.get(spec.service, spec.id);
      if (instance && oomAfter !== null && oomAfter > oomBefore) {
        this.cgroups.countOomKills(key, oomAfter - oomBefore);
        // Without a limit of its own, the kernel counts the kill here too when the host (or a parent cgroup) ran out.
        const why = limits.memory !== undefined ? `for exceeding its memory limit of ${formatBytes(limits.memory)}` : 'by the kernel: the host ran out of memory';
        this.ctx.lifecycle.emit(instance, 'oom', `killed ${why}`);
      }
      onExit(exit);
    };
  }
}
