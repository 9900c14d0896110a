import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { nodeRequestProblem } from './dataplane/http1.ts';
import { connectionRoute, routeOwn } from './dataplane/own-routes.ts';
import { ErrorCodes, errorFields } from './errors.ts';
import { answerClientError, badFraming, httpError, sendError, sendRedirect, sendSocketError, toHttpError, type HttpError } from './http-errors.ts';
import type { Kernel } from './kernel.ts';
import type { Proxy } from './proxy.ts';
import type { RequestInfo, RouteTarget } from './types.ts';

/** Host header to a bare, lowercased host name: port and trailing dot removed, IPv6 brackets kept. */
export function hostnameOf(host: string | undefined): string | null {
  if (!host) return null;
  let name = host.trim().toLowerCase();
  if (name.startsWith('[')) {
    const end = name.indexOf(']');
    return end > 0 ? name.slice(0, end + 1) : null;
  }
  const colon = name.indexOf(':');
  if (colon !== -1) name = name.slice(0, colon);
  if (name.endsWith('.')) name = name.slice(0, -1);
  return name.length > 0 ? name : null;
}

const BAD_HOST: HttpError = httpError(ErrorCodes.BAD_HOST, 'missing or malformed Host header');
const MANAGEMENT: RouteTarget = { kind: 'management' };

function requestInfo(req: IncomingMessage, hostname: string, upgrade: boolean): RequestInfo {
  return {
    hostname,
    method: req.method ?? 'GET',
    url: req.url ?? '/',
    headers: req.headers,
    remoteAddress: req.socket.remoteAddress ?? '',
    upgrade,
  };
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The node:http side of the listener: what the fast path hands over, and everything when it is switched off.
 * Each request is checked for what llhttp lets through but the fast path refuses, routed by the `route` hook,
 * then proxied, answered with a coded error, or given to the management app.
 */
export function createNodeServer(kernel: Kernel, proxy: Proxy, management: () => Handler): http.Server {
  const route = async (req: IncomingMessage, upgrade: boolean): Promise<RouteTarget | HttpError> => {
    const hostname = hostnameOf(req.headers.host);
    if (!hostname) return BAD_HOST;
    try {
      // A connection a plugin handed in (ctx.proxy.accept) is routed by that plugin alone, never to management.
      const own = connectionRoute(req.socket);
      if (own) return await routeOwn(own, requestInfo(req, hostname, upgrade));
      // Nothing claimed the request: the management app answers (its own routes, or a coded 404).
      return (await kernel.hooks.route.promise(requestInfo(req, hostname, upgrade))) ?? MANAGEMENT;
    } catch (error) {
      kernel.log.error(errorFields(error), 'route hook failed');
      return toHttpError(error);
    }
  };

  const dispatch = (req: IncomingMessage, res: ServerResponse): void => {
    // What llhttp lets through but the fast path refuses (two Hosts, a foreign absolute-form target...).
    const problem = nodeRequestProblem(req.method ?? '', req.url ?? '', req.rawHeaders);
    if (problem !== null) {
      res.shouldKeepAlive = false;
      return sendError(res, badFraming(problem));
    }
    const receivedAt = performance.now();
    route(req, false).then(
      (target) => {
        if (!('kind' in target)) return sendError(res, target);
        switch (target.kind) {
          case 'instances':
            return proxy.forward(req, res, target, { hostname: hostnameOf(req.headers.host) ?? '', receivedAt }).catch((error: unknown) => sendError(res, toHttpError(error)));
          case 'management':
            return management()(req, res);
          case 'reject':
            return sendError(res, target);
          case 'redirect':
            return sendRedirect(res, target);
        }
      },
      (error: unknown) => sendError(res, toHttpError(error)),
    );
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const problem = nodeRequestProblem(req.method ?? '', req.url ?? '', req.rawHeaders);
    if (problem !== null) return sendSocketError(socket, badFraming(problem));
    const receivedAt = performance.now();
    route(req, true).then(
      (target) => {
        if (!('kind' in target)) return sendSocketError(socket, target);
        if (target.kind === 'instances') return proxy.upgrade(req, socket, head, target, { hostname: hostnameOf(req.headers.host) ?? '', receivedAt });
        if (target.kind === 'reject') return sendSocketError(socket, target);
        return sendSocketError(socket, httpError(ErrorCodes.NOT_FOUND, 'no upgrade endpoint here'));
      },
      (error: unknown) => sendSocketError(socket, toHttpError(error)),
    );
  };

  // No Host header gets our JSON 400 (TNM_ERR_BAD_HOST) from `route`, not Node's bare one.
  // llhttp stays strict (no insecureHTTPParser) and repeated headers stay repeated, for nodeRequestProblem.
  const server = http.createServer({ requireHostHeader: false, insecureHTTPParser: false, joinDuplicateHeaders: false }, dispatch);
  server.on('upgrade', onUpgrade);
  server.on('clientError', answerClientError);
  // Not a forward proxy: CONNECT gets a status rather than a silently closed connection.
  server.on('connect', (_req: IncomingMessage, socket: Duplex) =>
    sendSocketError(socket, httpError(ErrorCodes.METHOD_NOT_ALLOWED, 'CONNECT is not supported here')),
  );
  // A client that half-closes after its request (shutdown(SHUT_WR)) still gets its answer (Proxy probes it).
  (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;
  // Long uploads stream through; only the headers have a deadline.
  server.requestTimeout = 0;
  server.headersTimeout = 60_000;
  server.keepAliveTimeout = 30_000;
  return server;
}
