import { ErrorCodes, TenementError } from '../errors.ts';
import type { ServiceConfig } from '../config/schema.ts';
import type { Identity } from '../types.ts';

type TenantGrant = ServiceConfig['tenants'];

/** Whether `identity` may see and act on instances with this id: admins on all, a tenant on its own id only. */
export function canAccess(identity: Identity | null, instanceId: string): boolean {
  if (!identity) return false;
  return identity.kind === 'admin' || identity.tenant === instanceId;
}

export function requireAdmin(identity: Identity | null, what: string): void {
  if (identity?.kind !== 'admin') {
    throw new TenementError(ErrorCodes.FORBIDDEN, `${what} needs an admin token`);
  }
}

/** A tenant asking for another tenant's instance learns nothing: the answer is the same as for no instance. */
export function requireAccess(identity: Identity | null, service: string, id: string): void {
  if (!canAccess(identity, id)) {
    throw new TenementError(ErrorCodes.UNKNOWN_INSTANCE, `unknown instance '${service}:${id}'`);
  }
}

/**
 * Creating an instance: admins anywhere; a tenant token only its own id (checked by the caller), and only in a
 * service whose config grants `tenants.create`, so a tenant cannot add itself to a service meant for others.
 */
export function requireCreate(identity: Identity | null, service: string, grant: TenantGrant): void {
  if (identity?.kind === 'admin') return;
  if (!grant.create) {
    throw new TenementError(
      ErrorCodes.FORBIDDEN,
      `creating an instance of '${service}' needs an admin token (or tenants: { create: true } on the service)`,
    );
  }
}

/**
 * The weight an instance created by `identity` starts with: the service's weight for an admin, at most the
 * service's `tenants.maxWeight` for anyone else (a tenant token, or an anonymous request through autoCreate),
 * so nobody but the operator adds an instance to `{service}.{domain}` traffic unless the config allows it.
 */
export function createdWeight(identity: Identity | null, config: { weight: number; tenants: TenantGrant }): number {
  return identity?.kind === 'admin' ? config.weight : Math.min(config.weight, config.tenants.maxWeight);
}

/** Changing a weight: admins any; a tenant token only on a service granting `tenants.maxWeight`, up to it. */
export function requireWeight(identity: Identity | null, service: string, grant: TenantGrant, weight: number): void {
  if (identity?.kind === 'admin' || (grant.maxWeight > 0 && weight <= grant.maxWeight)) return;
  throw new TenementError(
    ErrorCodes.FORBIDDEN,
    grant.maxWeight > 0
      ? `a tenant token may set a weight up to ${grant.maxWeight} in '${service}' (tenants.maxWeight), not ${weight}`
      : `changing a weight in '${service}' needs an admin token (or tenants: { maxWeight: N } on the service)`,
  );
}
