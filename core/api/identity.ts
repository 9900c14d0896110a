import { ErrorCodes, TenementError } from '../errors.ts';
import type { Identity } from '../types.ts';

/** Whether `identity` may see and act on instances with this id: admins on all, a tenant on its own id only. */
export function canAccess(identity: Identity | null, instanceId: string): boolean {
  if (!identity) return false;
  return identity.kind === 'admin' || identity.tenant === instanceId;
}

export function requireAdmin(identity: Identity | null, what: string): void {
  if (identity?.kind !== 'admin') {
    throw new TenementError(ErrorCodes.FORBIDDEN, `${what} needs an admin token`, { status: 403 });
  }
}

/** A tenant asking for another tenant's instance learns nothing: the answer is the same as for no instance. */
export function requireAccess(identity: Identity | null, service: string, id: string): void {
  if (!canAccess(identity, id)) {
    throw new TenementError(ErrorCodes.UNKNOWN_INSTANCE, `unknown instance '${service}:${id}'`, { status: 404 });
  }
}
