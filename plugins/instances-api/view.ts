import type { InstanceSnapshot, InstanceView } from '../../core/instance.ts';
import { requireAccess } from '../../core/api/identity.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { InstanceFacts } from '../../core/hooks.ts';
import type { InstanceDirectory } from '../../core/plugin-context.ts';
import type { Identity } from '../../core/types.ts';

/** What the API shows of an instance: its snapshot plus ages and resource use, computed at the moment asked. */
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

/**
 * The instance the caller asked for. A tenant asking for another tenant's instance gets the same 404 as for a
 * missing one, so ids of other tenants cannot be probed.
 */
export function findInstance(instances: Pick<InstanceDirectory, 'get'>, identity: Identity | null, service: string, id: string): InstanceView {
  requireAccess(identity, service, id);
  const instance = instances.get(service, id);
  if (!instance) throw new TenementError(ErrorCodes.UNKNOWN_INSTANCE, `unknown instance '${service}:${id}'`);
  return instance;
}

/** The last lines an instance wrote, for error answers that should say why it did not come up. */
export function lastLogLines(instance: InstanceView, limit = 20): string[] {
  return instance.logs.query({ limit }).map((entry) => `${entry.stream}: ${entry.line}`);
}
