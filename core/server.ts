import type http from 'node:http';
import type net from 'node:net';
import type { FastifyInstance } from 'fastify';
import { ErrorCodes, TenementError, errorMessage } from './errors.ts';
import type { Kernel } from './kernel.ts';
import { lazyManagement } from './management-loader.ts';
import { createNodeServer, hostnameOf } from './node-entry.ts';
import { Proxy } from './proxy.ts';
import { ApiRouter } from './api/router.ts';
import { AuditLog } from './api/audit.ts';
import { createApiSocket, type ApiSocket } from './api/socket.ts';
import { createDataPlane } from './dataplane/index.ts';
import { UpstreamPool } from './dataplane/upstream-pool.ts';
import { cachingRouter } from './dataplane/route-cache.ts';
import { setConnectionRoute, type ConnectionRoute } from './dataplane/own-routes.ts';
import type { RequestInfo, RouteTarget } from './types.ts';
import { ProxyWorkers } from './dataplane/workers/primary.ts';
import type { ReusePortListenOptions } from './dataplane/workers/listen.ts';
import { availableParallelism } from 'node:os';

export interface TenementServer {
  /** The listening socket: the fast data plane, or the node:http server itself when that is switched off. */
  listener: net.Server;
  /** Handles management requests and every request the fast path hands over. */
  http: http.Server;
  /** The management app on the bare domain, made on its first request (core/management-loader.ts), or now. */
  management(): Promise<FastifyInstance>;
  /** Where plugins add management API routes (authenticated, validated, audited, documented). */
  api: ApiRouter;
  /** The management API's Unix socket (settings.api.socket); its path is null when it serves none. */
  apiSocket: ApiSocket;
  listen(port: number, host: string): Promise<void>;
  /** Stops accepting and closes idle connections; resolves once every connection is gone. */
  close(): Promise<void>;
  /** Destroys the connections still open (after instances are stopped, nothing more will come on them). */
  terminate(): void;
  /**
   * Serves a connection a plugin accepted on a listener of its own (ctx.proxy.accept) through the proxy, routed by
   * `route` instead of the `route` hook: nothing it leaves unanswered reaches the management surface.
   */
  accept(socket: net.Socket, route: ConnectionRoute): void;
  /** What the `route` hook answers for a request, through the route cache (core/dataplane/route-cache.ts). */
  route(info: RequestInfo): RouteTarget | undefined | Promise<RouteTarget | undefined>;
  /** The proxy workers (settings.proxy.workers): their pids, requests they served, connections they handed back. */
  proxyWorkers(): { pids: number[]; requests: number; handedBack: number; connections: number; accepting: number };
  /** Under settings.proxy.accept 'spill': one more worker accepts, or the last to accept parks; the load no longer decides (spill.ts). */
  steerProxyWorkers(action: 'spill' | 'park'): boolean;
  /** Resolves once every proxy worker has applied the routing changes made so far (at once with none). */
  proxyWorkersSynced(): Promise<void>;
}

export { hostnameOf };

/**
 * One listener for everything: the fast data plane takes tenant traffic and hands the rest to a node:http server
 * (node-entry.ts), which routes each request by the `route` hook, then proxies it or gives it to the management
 * app (management-app.ts) on the bare domain, also served on a Unix socket (api/socket.ts).
 */
export async function createServer(kernel: Kernel): Promise<TenementServer> {
  const proxy = new Proxy(kernel.hooks);
  // The management app is made on its first request: routes wait in `api`, the socket's hook in `apiSocket`.
  const nodeServer = createNodeServer(kernel, proxy, () => management.handle);
  const management = lazyManagement(kernel, nodeServer, (app) => {
    api.attach(app);
    apiSocket.attach(app);
  });

  const pool = new UpstreamPool();
  // One cache for the listener and for plugins routing by a host (ctx.proxy.route): answers depend on the host alone.
  const router = cachingRouter(kernel.hooks);
  const fastPath = process.env.TENEMENT_FAST_PROXY !== '0';
  const dataPlane = fastPath
    ? createDataPlane({
        hooks: kernel.hooks,
        pool,
        log: kernel.log,
        hostnameOf,
        handoff: (socket) => nodeServer.emit('connection', socket),
        route: router,
      })
    : null;
  const listener = dataPlane?.server ?? nodeServer;
  const wanted = kernel.config.settings.proxy.workers;
  const workerCount = wanted === 'auto' ? availableParallelism() : wanted;
  // More proxy processes accepting from the same socket; the fast path is what they run.
  const workers =
    dataPlane && workerCount > 1
      ? new ProxyWorkers(
          { hooks: kernel.hooks, log: kernel.log, instanceByKey: (key) => kernel.instances.getByKey(key) },
          dataPlane.server,
          workerCount,
          (socket, bytes) => {
            if (bytes.length > 0) socket.unshift(bytes);
            dataPlane.server.emit('connection', socket);
          },
          kernel.config.settings.proxy.accept,
          dataPlane,
          kernel.config.settings.proxy.pin,
        )
      : null;

  const api = new ApiRouter(kernel.hooks, new AuditLog(kernel.store));

  // The management API on a Unix socket in the data dir, and off TCP under settings.api.tcp: false.
  const apiSocket = createApiSocket({
    dataDir: kernel.config.settings.dataDir,
    api: kernel.config.settings.api,
    handler: (req, res) => management.handle(req, res),
    log: kernel.log,
  });

  return {
    api,
    apiSocket,
    listener,
    http: nodeServer,
    management: management.app,
    async listen(port, host) {
      try {
        await new Promise<void>((resolve, reject) => {
          listener.once('error', reject);
          // With proxy workers on Node >= 22.12, the kernel's socket is one of several bound with SO_REUSEPORT.
          const options: ReusePortListenOptions = workers?.reusePort ? { port, host, reusePort: true } : { port, host };
          listener.listen(options, () => {
            listener.removeListener('error', reject);
            // From here on an error is a failed accept (EMFILE at the fd limit): that one connection is lost,
            // the server goes on, and unlistened it would end the process.
            listener.on('error', (error: NodeJS.ErrnoException) => kernel.log.warn({ err: errorMessage(error), code: error.code }, 'accepting a connection failed'));
            resolve();
          });
        });
        await workers?.start();
      } catch (error) {
        throw new TenementError(ErrorCodes.SERVER_LISTEN, `cannot listen on ${host}:${port}: ${errorMessage(error)}`, { cause: error });
      }
      await apiSocket.listen();
    },
    async close() {
      // Stop accepting; idle kept-alive connections go now, busy ones when their exchange ends.
      const closed = new Promise<void>((resolve) => (listener.listening ? listener.close(() => resolve()) : resolve()));
      const workersClosed = workers?.close();
      dataPlane?.closeIdleConnections();
      nodeServer.closeIdleConnections();
      const socketClosed = apiSocket.close();
      await management.close().catch(() => undefined);
      await closed;
      await workersClosed;
      await socketClosed;
      proxy.close();
      pool.close();
    },
    accept(socket, route) {
      if (dataPlane) return dataPlane.accept(socket, route);
      setConnectionRoute(socket, route);
      nodeServer.emit('connection', socket);
    },
    route: (info) => router(info.hostname, () => info),
    proxyWorkersSynced: () => workers?.synced() ?? Promise.resolve(),
    proxyWorkers: () => ({
      pids: workers?.pids ?? [],
      requests: workers?.requests ?? 0,
      handedBack: workers?.handedBack ?? 0,
      connections: workers?.connections ?? 0,
      accepting: workers?.accepting ?? 0,
    }),
    steerProxyWorkers: (action) => workers?.steer(action) ?? false,
    terminate() {
      workers?.terminate();
      dataPlane?.closeAllConnections();
      nodeServer.closeAllConnections();
      apiSocket.terminate();
    },
  };
}
