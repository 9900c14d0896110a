import { isIP } from 'node:net';
import type { ServiceConfig } from '../../core/config/schema.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { RequestInfo, RouteTarget } from '../../core/types.ts';
import { ErrorCodes, statusOf } from '../../core/errors.ts';
import { definePlugin } from '../../sdk/index.ts';
import { autoCreate, autoCreates } from '../../core/auto-create.ts';
import { parseTenantHost } from './parse-host.ts';
import { balance } from '../../core/dataplane/balance.ts';

/** `{id}.{service}.{domain}`: that one instance, auto-created on its first request where the service allows it. */
function routeToInstance(ctx: PluginContext, service: string, config: ServiceConfig, id: string, request: RequestInfo): RouteTarget {
  let instance = ctx.instances.get(service, id);
  if (!instance && autoCreates(config)) {
    const created = autoCreate(ctx, service, config, id, request.remoteAddress);
    if ('kind' in created) return created;
    instance = created;
  }
  if (!instance) {
    return { kind: 'reject', status: statusOf(ErrorCodes.UNKNOWN_INSTANCE), code: ErrorCodes.UNKNOWN_INSTANCE, message: `unknown instance '${service}:${id}'` };
  }
  return { kind: 'instances', mode: 'direct', service, candidates: [instance] };
}

/** `{service}.{domain}`: the service's instances that can take traffic, in the order its `lb` rule gives (docs/lb.md). */
function routeToService(ctx: PluginContext, service: string, config: ServiceConfig): RouteTarget {
  const candidates = balance(config.lb, service, ctx.instances.ofService(service));
  if (candidates.length === 0) {
    return {
      kind: 'reject',
      status: statusOf(ErrorCodes.NO_HEALTHY_INSTANCE),
      code: ErrorCodes.NO_HEALTHY_INSTANCE,
      message: `service '${service}' has no instance that can take traffic (weight above 0 and not failed)`,
    };
  }
  return { kind: 'instances', mode: 'weighted', service, candidates };
}

function route(ctx: PluginContext, request: RequestInfo): RouteTarget {
  const domain = ctx.settings.domain;
  const { hostname } = request;
  if (hostname === domain) return { kind: 'management' };
  // Only a host outside the domain can be an IP address; tenant hosts skip the check.
  const parsed = parseTenantHost(hostname, domain);
  if ('status' in parsed && isIP(hostname.replace(/^\[|\]$/g, '')) !== 0) return { kind: 'management' };
  if ('status' in parsed) return { kind: 'reject', ...parsed };
  const config = ctx.services.get(parsed.service);
  if (!config) {
    return { kind: 'reject', status: statusOf(ErrorCodes.UNKNOWN_SERVICE), code: ErrorCodes.UNKNOWN_SERVICE, message: `unknown service '${parsed.service}'` };
  }
  if (parsed.id !== null) return routeToInstance(ctx, parsed.service, config, parsed.id, request);
  return routeToService(ctx, parsed.service, config);
}

/**
 * Host routing: `{id}.{service}.{domain}` goes to one instance, `{service}.{domain}` is spread over the
 * service's instances by its `lb` rule (weight, least requests, two choices), the bare domain (or an IP address) is the management surface.
 */
export default definePlugin({
  name: 'router',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    ctx.hooks.route.tap((request) => route(ctx, request));
  },
});
