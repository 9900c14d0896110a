import type { Kernel } from '../../core/kernel.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { serviceConfig } from '../../core/config/lookup.ts';
import type { Instance } from '../../core/instance.ts';
import { routeBody } from './schemas.ts';
import { isUp } from './start.ts';
import { viewOf } from './view.ts';

function existing(kernel: Kernel, service: string, id: string): Instance {
  const instance = kernel.instances.get(service, id);
  if (!instance) throw new TenementError(ErrorCodes.UNKNOWN_INSTANCE, `unknown instance '${service}:${id}'`, { status: 404 });
  return instance;
}

/** `POST /api/route`: moves all of a service's weighted traffic from one instance to another at once. */
export function routeSwapRoute(kernel: Kernel): void {
  kernel.api.route({
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
      if (!serviceConfig(kernel.config, service)) {
        throw new TenementError(ErrorCodes.UNKNOWN_SERVICE, `unknown service '${service}'`, { status: 404 });
      }
      if (from === to) throw new TenementError(ErrorCodes.BAD_REQUEST, 'from and to are the same instance', { status: 400 });
      const source = existing(kernel, service, from);
      const destination = existing(kernel, service, to);
      if (!isUp(destination)) {
        throw new TenementError(ErrorCodes.CONFLICT, `${destination.key} is ${destination.state}; traffic can only move to a running instance`, {
          status: 409,
        });
      }
      // Synchronous from here to the end of the batch: the router runs between ticks, never in the middle.
      kernel.store.batch(() => {
        kernel.setWeight(source, 0);
        kernel.setWeight(destination, 100);
      });
      return { from: await viewOf(kernel, source), to: await viewOf(kernel, destination) };
    },
  });
}
