import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { ErrorCodes, TenementError, errorFields, errorMessage, isTenementError } from './errors.ts';
import { answerClientError, badFraming, fromStatus, httpError, sendError, sendSocketError, toHttpError, type HttpError } from './http-errors.ts';
import { nodeRequestProblem } from './dataplane/http1.ts';
import type { Kernel } from './kernel.ts';
import { Proxy } from './proxy.ts';
import { ApiRouter } from './api/router.ts';
import { AuditLog } from './api/audit.ts';
import { createApiSocket, type ApiSocket } from './api/socket.ts';
import { createDataPlane } from './dataplane/index.ts';
import { UpstreamPool } from './dataplane/upstream-pool.ts';
import type { RequestInfo, RouteTarget } from './types.ts';

export interface TenementServer {
  /** The listening socket: the fast data plane, or the node:http server itself when that is switched off. */
  listener: net.Server;
  /** Handles management requests and every request the fast path hands over. */
  http: http.Server;
  /** The management app on the bare domain; plugins add routes to it during setup. */
  management: FastifyInstance;
  /** Where plugins add management API routes (authenticated, validated, audited, documented). */
  api: ApiRouter;
  /** The management API's Unix socket (settings.api.socket); its path is null when it serves none. */
  apiSocket: ApiSocket;
  listen(port: number, host: string): Promise<void>;
  /** Stops accepting and closes idle connections; resolves once every connection is gone. */
  close(): Promise<void>;
  /** Destroys the connections still open (after instances are stopped, nothing more will come on them). */
  terminate(): void;
}

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

/**
 * One HTTP server for everything: each request is routed by the `route` hook, then either proxied to an
 * instance or handed to the management app (Fastify) on the bare domain.
 */
export async function createServer(kernel: Kernel): Promise<TenementServer> {
  const proxy = new Proxy(kernel.hooks);
  let managementHandler: ((req: IncomingMessage, res: ServerResponse) => void) | null = null;

  const route = async (req: IncomingMessage, upgrade: boolean): Promise<RouteTarget | HttpError> => {
    const hostname = hostnameOf(req.headers.host);
    if (!hostname) return BAD_HOST;
    try {
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
    route(req, false).then(
      (target) => {
        if (!('kind' in target)) return sendError(res, target);
        switch (target.kind) {
          case 'instances':
            return proxy.forward(req, res, target).catch((error: unknown) => sendError(res, toHttpError(error)));
          case 'management':
            return managementHandler!(req, res);
          case 'reject':
            return sendError(res, target);
        }
      },
      (error: unknown) => sendError(res, toHttpError(error)),
    );
  };

  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const problem = nodeRequestProblem(req.method ?? '', req.url ?? '', req.rawHeaders);
    if (problem !== null) return sendSocketError(socket, badFraming(problem));
    route(req, true).then(
      (target) => {
        if (!('kind' in target)) return sendSocketError(socket, target);
        if (target.kind === 'instances') return proxy.upgrade(req, socket, head, target);
        if (target.kind === 'reject') return sendSocketError(socket, target);
        return sendSocketError(socket, httpError(ErrorCodes.NOT_FOUND, 'no upgrade endpoint here'));
      },
      (error: unknown) => sendSocketError(socket, toHttpError(error)),
    );
  };

  const management = Fastify({
    logger: false,
    serverFactory: (handler) => {
      managementHandler = handler;
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
    },
  });
  management.setErrorHandler((error: Error, _request, reply) => {
    if (isTenementError(error)) {
      const http = toHttpError(error);
      if (http.retryAfter !== undefined) void reply.header('retry-after', http.retryAfter);
      if (http.status === 401) void reply.header('www-authenticate', 'Bearer realm="tenement"');
      // Where it came from (a plugin's tap) is for operators: the management API says it, the edge does not.
      const origin = http.plugin === undefined ? {} : { plugin: http.plugin, hook: http.hook };
      return void reply.status(http.status).send({ error: { code: http.code, message: http.message, ...origin } });
    }
    // Fastify's own errors (bad JSON, wrong content type, body too large) are the client's: coded by their status.
    const http = fromStatus((error as { statusCode?: number }).statusCode ?? 500, error.message);
    if (http.status >= 500) kernel.log.error({ err: error.message }, 'management request failed');
    void reply.status(http.status).send({ error: { code: http.code, message: http.message } });
  });
  management.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: { code: ErrorCodes.NOT_FOUND, message: `no endpoint ${request.method} ${request.url}` } });
  });
  management.get('/health', async () => ({
    status: 'ok',
    uptimeSeconds: Math.round((Date.now() - kernel.startedAt) / 1000),
    instances: kernel.instances.size,
  }));

  const pool = new UpstreamPool();
  const fastPath = process.env.TENEMENT_FAST_PROXY !== '0';
  const dataPlane = fastPath
    ? createDataPlane({
        hooks: kernel.hooks,
        pool,
        log: kernel.log,
        hostnameOf,
        handoff: (socket) => management.server.emit('connection', socket),
      })
    : null;
  const listener = dataPlane?.server ?? management.server;

  const api = new ApiRouter(management, kernel.hooks, new AuditLog(kernel.store));

  // The management API on a Unix socket in the data dir, and off TCP under settings.api.tcp: false.
  const apiSocket = createApiSocket({
    dataDir: kernel.config.settings.dataDir,
    api: kernel.config.settings.api,
    management,
    handler: (req, res) => managementHandler!(req, res),
    log: kernel.log,
  });

  return {
    api,
    apiSocket,
    listener,
    http: management.server,
    management,
    async listen(port, host) {
      try {
        await management.ready();
        await new Promise<void>((resolve, reject) => {
          listener.once('error', reject);
          listener.listen({ port, host }, () => {
            listener.removeListener('error', reject);
            // From here on an error is a failed accept (EMFILE at the fd limit): that one connection is lost,
            // the server goes on, and unlistened it would end the process.
            listener.on('error', (error: NodeJS.ErrnoException) => kernel.log.warn({ err: errorMessage(error), code: error.code }, 'accepting a connection failed'));
            resolve();
          });
        });
      } catch (error) {
        throw new TenementError(ErrorCodes.SERVER_LISTEN, `cannot listen on ${host}:${port}: ${errorMessage(error)}`, { cause: error });
      }
      await apiSocket.listen();
    },
    async close() {
      // Stop accepting; idle kept-alive connections go now, busy ones when their exchange ends.
      const closed = new Promise<void>((resolve) => (listener.listening ? listener.close(() => resolve()) : resolve()));
      dataPlane?.closeIdleConnections();
      management.server.closeIdleConnections();
      const socketClosed = apiSocket.close();
      await management.close().catch(() => undefined);
      await closed;
      await socketClosed;
      proxy.close();
      pool.close();
    },
    terminate() {
      dataPlane?.closeAllConnections();
      management.server.closeAllConnections();
      apiSocket.terminate();
    },
  };
}
