import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { InstanceView } from '../../core/instance.ts';
import type { InstanceDirectory, PluginContext } from '../../core/plugin-context.ts';
import { routeBody } from './schemas.ts';
import { isUp } from './start.ts';
import { viewOf } from './view.ts';

function existing(instances: Pick<InstanceDirectory, 'get'>, service: string, id: string): InstanceView {
  const instance = instances.get(service, id);
  if (!instance) throw new TenementError(ErrorCodes.UNKNOWN_INSTANCE, `unknown instance '${service}:${id}'`);
  return instance;
}

/** `POST /api/route`: moves all of a service's weighted traffic from one instance to another at once. */
export function routeSwapRoute(ctx: PluginContext): void {
  ctx.api.route({
    method: 'POST',
    url: '/api/route',
    summary: "Move a service's traffic at once: weight 0 for `from`, 100 for `to` (which must be running)",
    description:
      'Both weights change in the same tick and are written in one transaction, so no request sees both at 0 or ' +
      'both at 100. Requests already on `from` finish there; `from` keeps running and is still reachable at ' +
      '{from}.{service}.{domain}.',
    tags: ['deploy'],
    access: 'admin',
    body: routeBody,
    handler: async ({ body, audit }) => {
      const { service, from, to } = body;
      audit.target = `${service}:${to}`;
      audit.instanceId = to;
      audit.detail = `traffic ${service}:${from} -> ${service}:${to}`;
      if (!ctx.services.get(service)) {
        throw new TenementError(ErrorCodes.UNKNOWN_SERVICE, `unknown service '${service}'`);
      }
      if (from === to) throw new TenementError(ErrorCodes.BAD_REQUEST, 'from and to are the same instance');
      const source = existing(ctx.instances, service, from);
      const destination = existing(ctx.instances, service, to);
      if (!isUp(destination)) {
        throw new TenementError(ErrorCodes.CONFLICT, `${destination.key} is ${destination.state}; traffic can only move to a running instance`, {
        });
      }
      // Synchronous from here to the end of the batch: the router runs between ticks, never in the middle.
      // One transaction on the state database: both weights are written together or not at all.
      ctx.store.db.transaction(() => {
        ctx.lifecycle.setWeight(source, 0);
        ctx.lifecycle.setWeight(destination, 100);
      })();
      return { from: await viewOf(ctx.instances, source), to: await viewOf(ctx.instances, destination) };
    },
  });
}
