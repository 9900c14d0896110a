import type { ConnectionRoute } from '../../core/dataplane/own-routes.ts';
import { ErrorCodes, statusOf } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { RequestInfo, RouteTarget } from '../../core/types.ts';
import { parseZoneName, ZONE } from './zone.ts';

/** Who is calling on a discovery listener, as the listener knows it. */
export interface Caller {
  /** How errors name it: `notes:alice`, or `a host-network tenant`. */
  readonly who: string;
  /** Whether the request's source address is this caller (a private listener serves its own instance only). */
  from(remoteAddress: string): boolean;
  /** Whether it may call the service (read per request: a reload's egress applies at once). */
  allowed(service: string): boolean;
}

function denied(message: string): RouteTarget {
  return { kind: 'reject', status: statusOf(ErrorCodes.EGRESS_DENIED), code: ErrorCodes.EGRESS_DENIED, message };
}

/** The request as the `route` hook sees a call by the service's public host (`[id.]service.<domain>`). */
function asPublicHost(info: RequestInfo, hostname: string): RequestInfo {
  return {
    hostname,
    method: info.method,
    url: info.url,
    remoteAddress: info.remoteAddress,
    upgrade: info.upgrade,
    get headers() {
      return info.headers;
    },
  };
}

/**
 * How a discovery listener routes: only `{service}.tenement.internal` and `{id}.{service}.tenement.internal`,
 * only from its own caller, only to services the caller may call; then exactly as the service's public host
 * (the `route` hook: router, autoCreate, fleet, edge auth). The management surface is never reachable here.
 */
export function discoveryRoute(ctx: Pick<PluginContext, 'proxy' | 'settings'>, caller: Caller): ConnectionRoute {
  return (info) => {
    if (!caller.from(info.remoteAddress)) return denied(`this listener serves ${caller.who} only`);
    const name = parseZoneName(info.hostname);
    if (name === 'outside' || name === 'invalid' || name.srv) {
      return denied(`host '${info.hostname}' is not served here: expected {service}.${ZONE} or {id}.{service}.${ZONE}`);
    }
    if (!caller.allowed(name.service)) return denied(`${caller.who} may not call '${name.service}': its egress does not name it`);
    const domain = ctx.settings.domain;
    const host = name.id === null ? `${name.service}.${domain}` : `${name.id}.${name.service}.${domain}`;
    // Synchronous on a route cache hit; the caller's policy was decided above and is never cached.
    return ctx.proxy.route(asPublicHost(info, host));
  };
}
