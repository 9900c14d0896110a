import type { InstanceView } from '../../core/instance.ts';
import { requireAccess } from '../../core/api/identity.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { InstanceDirectory } from '../../core/plugin-context.ts';
import type { Identity } from '../../core/types.ts';

export { viewOf, type ApiInstanceView } from '../../core/api/instance-view.ts';

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
