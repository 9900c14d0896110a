import { chmodSync, lstatSync, rmSync } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ErrorCodes, TenementError, errorMessage } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { API_SOCKET_FILE, apiSocketPath, type ApiSettings } from './socket-path.ts';

/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;
export interface ApiSocket {
  /** The socket's path while it listens, else null. */
  readonly path: string | null;
  listen(): Promise<void>;
  /** Sets up the management app for the socket (made on its first request, core/server.ts). */
  attach(management: FastifyInstance): void;
  /** Stops accepting, closes idle connections and removes the socket file. */
  close(): Promise<void>;
  terminate(): void;
}

/** Whether a socket file at `file` has a server behind it (a stale one, left by a crash, refuses). */
function answers(file: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.connect({ path: file });
    const done = (alive: boolean): void => {
      probe.destroy();
      resolve(alive);
    };
    probe.setTimeout(2_000, () => done(true));
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
  });
}

/** Removes a stale socket left by a run that crashed; a live one means another server uses this data dir. */
async function clearStale(file: string): Promise<void> {
  let info;
  try {
    info = lstatSync(file);
  } catch {
    return;
  }
  if (!info.isSocket()) {
    throw new TenementError(ErrorCodes.SERVER_LISTEN, `the management API socket path ${file} exists and is not a socket: move it away`);
  }
  if (await answers(file)) {
    throw new TenementError(
      ErrorCodes.SERVER_LISTEN,
      `another server answers on ${file}: one data dir serves one \`ten serve\` at a time (stop the other, or give this one its own settings.dataDir)`,
    );
  }
  rmSync(file, { force: true });
}

/**
 * The management API on a Unix socket (mode 0600, so only the server's own user, root in production, can
 * connect; tenants run as other uids), and, with `settings.api.tcp: false`, off the TCP listener: there every
 * `/api` request that reaches the management app answers 404, whatever its Host. Requests on the socket go
 * straight to the management app (no Host routing): `/health`, `/metrics`, `/api/*`, still with a token.
 */
export function createApiSocket(options: {
  dataDir: string;
  api: ApiSettings;
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  log: Logger;
}): ApiSocket {
  const { api, log } = options;
  const file = apiSocketPath(options.dataDir, api);
  const viaSocket = new WeakSet<net.Socket>();
  let server: http.Server | null = null;
  let listening: string | null = null;

  const attach = (management: FastifyInstance): void => {
    if (api.tcp) return;
    management.addHook('onRequest', async (request, reply) => {
      if (viaSocket.has(request.raw.socket)) return;
      const url = request.raw.url ?? '/';
      // The matched route too: the router decodes %-escapes, so /%61pi/tokens would reach /api/tokens.
      const route = request.routeOptions.url ?? '';
      if (!isApiPath(url) && !isApiPath(route)) return;
      await reply.status(404).send({
        error: { code: ErrorCodes.NOT_FOUND, message: `no endpoint ${request.method} ${url}: the management API is served on its Unix socket only (settings.api.tcp: false)` },
      });
      return reply;
    });
  };

  return {
    get path() {
      return listening;
    },
    attach,
    async listen() {
      // A socket left by a crash goes even when this run serves none (it would only mislead the CLI).
      const defaultFile = path.resolve(options.dataDir, API_SOCKET_FILE);
      if (file !== defaultFile) await clearStale(defaultFile).catch(() => undefined);
      if (!file) return;
      if (Buffer.byteLength(file) > MAX_SOCKET_PATH_BYTES) {
        const why = `the management API socket path ${file} is longer than the ${MAX_SOCKET_PATH_BYTES} bytes a Unix socket path may have`;
        if (api.socket === true && api.tcp) {
          log.warn({ path: file }, `${why}: serving the API on TCP only (set settings.api.socket to a shorter path, or false)`);
          return;
        }
        throw new TenementError(ErrorCodes.SERVER_LISTEN, `${why}: set settings.api.socket to a shorter path`);
      }
      await clearStale(file);
      const socketServer = http.createServer({ requireHostHeader: false }, options.handler);
      socketServer.on('connection', (socket: net.Socket) => viaSocket.add(socket));
      socketServer.requestTimeout = 0;
      socketServer.headersTimeout = 60_000;
      socketServer.keepAliveTimeout = 30_000;
      try {
        await new Promise<void>((resolve, reject) => {
          socketServer.once('error', reject);
          // bind() creates the file with the umask's mode; narrowed for that one synchronous call so that the
          // socket is never connectable by others, not even between bind and chmod.
          const umask = process.umask(0o177);
          try {
            socketServer.listen({ path: file }, () => {
              socketServer.removeListener('error', reject);
              resolve();
            });
          } finally {
            process.umask(umask);
          }
        });
        chmodSync(file, 0o600);
        // After listen, an error is a failed accept (EMFILE at the fd limit): one connection lost, not the server.
        socketServer.on('error', (error: NodeJS.ErrnoException) => log.warn({ err: errorMessage(error), code: error.code }, 'accepting an API socket connection failed'));
      } catch (error) {
        socketServer.close();
        throw new TenementError(ErrorCodes.SERVER_LISTEN, `cannot listen on the management API socket ${file}: ${errorMessage(error)}`, { cause: error });
      }
      server = socketServer;
      listening = file;
    },
    async close() {
      if (!server || !server.listening) return;
      const closing = server;
      const closed = new Promise<void>((resolve) => closing.close(() => resolve()));
      closing.closeIdleConnections();
      await closed;
      if (listening) rmSync(listening, { force: true });
      listening = null;
    },
    terminate() {
      server?.closeAllConnections();
    },
  };
}

function isApiPath(url: string): boolean {
  const pathname = url.split('?', 1)[0]!;
  return pathname === '/api' || pathname.startsWith('/api/');
}
