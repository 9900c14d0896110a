import { z } from 'zod';
import { requireAccess } from '../../core/api/identity.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { ErrorCodes, TenementError } from '../../sdk/index.ts';
import type { CgroupSet } from './cgroup-set.ts';
import type { CgroupHost } from './detect.ts';

const params = z.object({ service: z.string().min(1), id: z.string().min(1) });

export interface LimitsView {
  limits: { memory?: number; cpu?: number; pids?: number } | null;
  cgroupVersion: 1 | 2 | null;
  /** The cgroup path of the current run (relative to each hierarchy's root), null when none is live. */
  cgroup: string | null;
  usage: { memoryBytes: number | null; cpuSeconds: number | null } | null;
  /** OOM kills over the life of this server, across restarts. */
  oomKills: number;
}

/** GET /api/instances/:service/:id/limits: what is enforced on one instance and what it uses now. */
export function limitsRoute(ctx: Pick<PluginContext, 'api' | 'instances'>, host: CgroupHost, cgroups: CgroupSet): void {
  ctx.api.route({
    method: 'GET',
    url: '/api/instances/:service/:id/limits',
    summary: "An instance's resource limits, its cgroup's memory and CPU use, and its OOM kills",
    tags: ['instances'],
    access: 'token',
    params,
    handler: ({ identity, params: p }): LimitsView => {
      requireAccess(identity, p.service, p.id);
      const instance = ctx.instances.get(p.service, p.id);
      if (!instance) throw new TenementError(ErrorCodes.UNKNOWN_INSTANCE, `unknown instance '${p.service}:${p.id}'`);
      const cgroup = cgroups.get(instance.key);
      return {
        limits: instance.config.limits ?? null,
        cgroupVersion: host.version,
        cgroup: cgroup?.relPath ?? null,
        usage: cgroup ? cgroup.usage() : null,
        oomKills: cgroups.oomKillsOf(instance.key),
      };
    },
  });
}
