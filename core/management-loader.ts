/**
 * The management app (core/management-app.ts: Fastify) made on the first request it answers, not at start-up: a
 * server that only proxies never loads Fastify, some 6 MB of an idle server's memory (bench/footprint.ts). The first
 * management request (bare domain, API socket, `ten ps`, the dashboard) waits for it: tens of milliseconds,
 * measured by bench/footprint.ts. Routes declared before then wait in the ApiRouter (core/api/router.ts).
 */
import type http from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { errorFields } from './errors.ts';
import { sendError, toHttpError } from './http-errors.ts';
import type { Kernel } from './kernel.ts';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

export interface LazyManagement {
  /** Answers a management request: at once once the app is made; the first requests wait for it. */
  handle: Handler;
  /** The app, made now if it is not yet. */
  app(): Promise<FastifyInstance>;
  /** Closes the app, if it was made. */
  close(): Promise<void>;
}

/** `configure` gets the app before it is ready: the routes and hooks it needs (ApiRouter, API socket). */
export function lazyManagement(kernel: Kernel, server: http.Server, configure: (app: FastifyInstance) => void): LazyManagement {
  let handler: Handler | null = null;
  let making: Promise<FastifyInstance> | null = null;
  const make = async (): Promise<FastifyInstance> => {
    const { createManagementApp } = await import('./management-app.ts');
    const made = createManagementApp(kernel, server);
    try {
      configure(made.app);
      await made.app.ready();
    } catch (error) {
      await made.app.close().catch(() => undefined);
      throw error;
    }
    handler = made.handler;
    return made.app;
  };
  // A failure is not kept: the next management request makes the app again. A cause that passes (a plugin's
  // registration timing out on a loaded host) must not leave the API answering 500 until a restart.
  const app = (): Promise<FastifyInstance> =>
    (making ??= make().catch((error: unknown) => {
      making = null;
      throw error;
    }));
  return {
    handle(req, res) {
      if (handler) return handler(req, res);
      app().then(
        () => handler!(req, res),
        // A broken install, a route Fastify refuses, or a passing cause: this request answers 500, the proxy goes
        // on, and the next management request tries again.
        (error: unknown) => {
          kernel.log.error(errorFields(error), 'the management app could not be made');
          sendError(res, toHttpError(error));
        },
      );
    },
    app,
    async close() {
      const made = await making?.catch(() => null);
      await made?.close();
    },
  };
}
