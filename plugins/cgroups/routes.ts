import { z } from 'zod';
import { requireAccess } from '../../core/api/identity.ts';
import { ErrorCodes, TenementError } from '../../sdk/index.ts';
import type { Kernel } from '../../sdk/index.ts';
import type { CgroupHost } from './detect.ts';
import type { InstanceCgroup } from './instance-cgroup.ts';

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
export function limitsRoute(
  kernel: Kernel,
  host: CgroupHost,
  live: ReadonlyMap<string, InstanceCgroup>,
  oomKills: ReadonlyMap<string, number>,
): void {
  kernel.api.route({
    method: 'GET',
    url: '/api/instances/:service/:id/limits',
    summary: "An instance's resource limits, its cgroup's memory and CPU use, and its OOM kills",
    tags: ['instances'],
    access: 'token',
    params,
    handler: ({ identity, params: p }): LimitsView => {
      requireAccess(identity, p.service, p.id);
      const instance = kernel.instances.get(p.service, p.id);
      if (!instance) throw new TenementError(ErrorCodes.UNKNOWN_INSTANCE, `unknown instance '${p.service}:${p.id}'`, { status: 404 });
      const cgroup = live.get(instance.key);
      return {
        limits: instance.config.limits ?? null,
        cgroupVersion: host.version,
        cgroup: cgroup?.relPath ?? null,
        usage: cgroup ? cgroup.usage() : null,
        oomKills: oomKills.get(instance.key) ?? 0,
      };
    },
  });
}
