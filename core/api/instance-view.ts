import type { InstanceSnapshot, InstanceView } from '../instance.ts';
import type { InstanceFacts } from '../hooks.ts';
import type { InstanceDirectory } from '../plugin-context.ts';

/**
 * What the API shows of an instance: its snapshot plus ages and resource use, computed at the moment asked.
 * In core because two plugins answer with it (instances-api's routes, the dashboard's event stream) and one
 * plugin never imports another.
 */
export interface ApiInstanceView extends InstanceSnapshot {
  /** Seconds since it last became ready; null when it is not running. */
  uptimeSeconds: number | null;
  /** Seconds since proxied traffic last started or finished. */
  idleSeconds: number;
  /** Resident memory of its process; null when it is not running (or the runtime cannot tell). */
  memoryBytes: number | null;
  /** CPU time its process used; null when it is not running (or the runtime cannot tell). */
  cpuSeconds: number | null;
  /** What other plugins know of it (the `describe` hook): `oomKills`, `storage`... */
  facts: InstanceFacts;
}

const seconds = (ms: number): number => Math.max(0, Math.floor(ms / 1000));

export async function viewOf(instances: Pick<InstanceDirectory, 'describe'>, instance: InstanceView): Promise<ApiInstanceView> {
  const snapshot = instance.toJSON();
  const now = Date.now();
  const running = instance.state === 'running' && instance.handle !== null;
  // A process can end between the state check and the read of /proc: that is "no numbers", not an error.
  const stats = running ? await instance.handle!.stats().catch(() => null) : null;
  const facts = await instances.describe(instance);
  return {
    ...snapshot,
    uptimeSeconds: running && instance.readyAt !== null ? seconds(now - instance.readyAt) : null,
    idleSeconds: seconds(now - instance.lastActivity),
    memoryBytes: stats?.memoryBytes ?? null,
    cpuSeconds: stats?.cpuSeconds ?? null,
    facts,
  };
}
