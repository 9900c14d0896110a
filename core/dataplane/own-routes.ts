import type net from 'node:net';
import { ErrorCodes, statusOf } from '../errors.ts';
import type { RequestInfo, RouteTarget } from '../types.ts';
import type { Router } from './route-cache.ts';

/**
 * Routes a request that came in on a plugin's own listener (ctx.proxy.accept): what it answers, or undefined to
 * refuse the request. It replaces the `route` hook for that connection on both paths (fast and node:http).
 */
export type ConnectionRoute = (info: RequestInfo) => RouteTarget | undefined | Promise<RouteTarget | undefined>;

/** The routes of connections handed in by plugins; the node:http path looks a handed-over socket up here. */
const routes = new WeakMap<net.Socket, ConnectionRoute>();

export function setConnectionRoute(socket: net.Socket, route: ConnectionRoute): void {
  routes.set(socket, route);
}

export function connectionRoute(socket: unknown): ConnectionRoute | undefined {
  return routes.get(socket as net.Socket);
}

/**
 * The plugin's answer, with the two things a plugin's listener never gives: the management surface and "nobody
 * claimed it" (which on the main listener means the management surface). Both are a coded refusal.
 */
export function routeOwn(route: ConnectionRoute, info: RequestInfo): RouteTarget | Promise<RouteTarget> {
  const target = route(info);
  // Synchronous when the plugin's route is (a cached host): no promise on the fast path's hot loop.
  return target instanceof Promise ? target.then((answer) => refuseRest(answer, info)) : refuseRest(target, info);
}

function refuseRest(target: RouteTarget | undefined, info: RequestInfo): RouteTarget {
  if (target && target.kind !== 'management') return target;
  return { kind: 'reject', status: statusOf(ErrorCodes.NOT_FOUND), code: ErrorCodes.NOT_FOUND, message: `host '${info.hostname}' is not served on this listener` };
}

/** The fast path's Router for a connection with a route of its own. */
export function ownRouter(route: ConnectionRoute): Router {
  return (_hostname, info) => routeOwn(route, info());
}
