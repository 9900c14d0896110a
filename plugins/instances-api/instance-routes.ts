import type { ApiContext } from '../../core/api/router.ts';
import { canAccess, createdWeight, requireAccess, requireCreate } from '../../core/api/identity.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { isUp, settleStop, startFailure } from './start.ts';
import { instanceParams, listQuery, type InstanceParams } from './schemas.ts';
import { findInstance, viewOf } from './view.ts';

const TAGS = ['instances'];

/** `POST /api/instances/:service/:id`: creates the instance if it is new (where the caller may), then starts it. */
async function startInstance(ctx: PluginContext, { identity, params, reply, audit }: ApiContext<InstanceParams, unknown, unknown>): Promise<unknown> {
  const { service, id } = params;
  audit.target = `${service}:${id}`;
  audit.instanceId = id;
  requireAccess(identity, service, id);
  const config = ctx.services.get(service);
  if (!config) throw new TenementError(ErrorCodes.UNKNOWN_SERVICE, `unknown service '${service}'`);
  const existing = ctx.instances.get(service, id);
  if (existing) await settleStop(existing);
  else {
    requireCreate(identity, service, config.tenants);
    // Registered with its weight before anything can route to it; spawn then starts it.
    ctx.lifecycle.create(service, id, { weight: createdWeight(identity, config) });
  }
  const instance = await ctx.lifecycle.spawn(service, id);
  if (!isUp(instance)) return startFailure(ctx.instances, instance, reply, audit);
  reply.code(existing ? 200 : 201);
  return viewOf(ctx.instances, instance);
}

/** Listing, reading, creating and removing instances. */
export function instanceRoutes(ctx: PluginContext): void {
  ctx.api.route({
    method: 'GET',
    url: '/api/instances',
    summary: 'Instances, sorted by service then id (a tenant sees only its own)',
    tags: TAGS,
    access: 'token',
    query: listQuery,
    handler: async ({ identity, query }) => {
      const instances = ctx.instances
        .list(query)
        .filter((instance) => canAccess(identity, instance.id))
        .sort((a, b) => (a.service === b.service ? compare(a.id, b.id) : compare(a.service, b.service)));
      return { instances: await Promise.all(instances.map((instance) => viewOf(ctx.instances, instance))) };
    },
  });

  ctx.api.route({
    method: 'GET',
    url: '/api/instances/:service/:id',
    summary: 'One instance, with uptime, idle time, memory and CPU',
    tags: TAGS,
    access: 'token',
    params: instanceParams,
    handler: ({ identity, params }) => viewOf(ctx.instances, findInstance(ctx.instances, identity, params.service, params.id)),
  });

  ctx.api.route({
    method: 'POST',
    url: '/api/instances/:service/:id',
    summary: 'Create and start an instance (201), or start an existing one (200); answers once it is running',
    description:
      'A tenant token may only start the instance whose id is its tenant, and create it only where the service grants ' +
      'tenants.create (else 403); an instance a tenant creates gets weight min(weight, tenants.maxWeight). A start that ' +
      'fails answers 503 TNM_ERR_SPAWN_FAILED with the reason and the instance.',
    tags: TAGS,
    access: 'token',
    params: instanceParams,
    handler: (context) => startInstance(ctx, context),
  });

  ctx.api.route({
    method: 'DELETE',
    url: '/api/instances/:service/:id',
    summary: 'Stop an instance (draining its in-flight requests) and forget it',
    description: 'Its data directory is kept unless the service sets keepData: false.',
    tags: TAGS,
    access: 'token',
    params: instanceParams,
    handler: async ({ identity, params, audit }) => {
      audit.target = `${params.service}:${params.id}`;
      audit.instanceId = params.id;
      const instance = findInstance(ctx.instances, identity, params.service, params.id);
      await ctx.lifecycle.remove(instance, 'removed through the API');
      return { removed: instance.key };
    },
  });
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
