import { createHash } from 'node:crypto';
import path from 'node:path';
import type { PluginContext } from '../../core/plugin-context.ts';
import { definePlugin } from '../../sdk/index.ts';
import type { InstanceEvent, InstanceState } from '../../sdk/index.ts';
import { CgroupSet } from './cgroup-set.ts';
import { TOP, detectCgroups } from './detect.ts';
import { limitsRoute } from './routes.ts';
import { CgroupSpawns } from './spawn.ts';

/** States in which an instance's process has ended: its cgroup is emptied and removed then. */
const ENDED: ReadonlySet<InstanceState> = new Set(['restarting', 'failed', 'stopped', 'hibernated']);

/**
 * Each Tenement (one data directory) owns `tenement/<scope>` in every hierarchy, so two servers on one host,
 * or tests running side by side, never clean up each other's cgroups.
 */
export function cgroupScope(dataDir: string): string {
  return `${TOP}/${createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12)}`;
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
  async setup(ctx) {
    const host = detectCgroups(ctx.config?.root);
    const cgroups = new CgroupSet(host, cgroupScope(ctx.paths.dataDir), ctx.log);
    limitsRoute(ctx, host, cgroups);
    await cgroups.removeLeftovers();
    if (host.version !== null) ctx.log.debug({ version: host.version, roots: host.roots, problems: host.problems }, 'cgroups detected');

    const spawns = new CgroupSpawns(ctx, host, cgroups);
    ctx.hooks.beforeSpawn.tap((spec) => spawns.prepare(spec));
    ctx.hooks.afterSpawn.tap((handle, spec) => spawns.wrap(handle, spec));
    releaseEndedRuns(ctx, cgroups);
    // Cached counts only: this runs for every instance view.
    ctx.hooks.describe.tap((instance, facts) => {
      facts.oomKills = cgroups.oomKillsOf(instance.key);
    });
    ctx.onClose(() => cgroups.close());
  },
});

/** A run's cgroup goes when its process has ended (or the instance is removed); the next run makes a fresh one. */
function releaseEndedRuns(ctx: Pick<PluginContext, 'hooks'>, cgroups: CgroupSet): void {
  ctx.hooks.stateChange.tap((event: InstanceEvent) => {
    if (event.type === 'removed' || ENDED.has(event.to)) cgroups.release(event.instance);
  });
}
