import type http from 'node:http';
import { createRequire } from 'node:module';
import Fastify, { type FastifyInstance, type FastifyServerFactoryHandler, type FastifyServerOptions } from 'fastify';
import { ErrorCodes, isTenementError } from './errors.ts';
import { fromStatus, toHttpError } from './http-errors.ts';
import type { Kernel } from './kernel.ts';

type Compilers = NonNullable<NonNullable<FastifyServerOptions['schemaController']>['compilersFactory']>;
type Factory<K extends keyof Compilers> = NonNullable<Compilers[K]>;

/**
 * Fastify's JSON-schema compilers, loaded the first time a route declares a Fastify schema (ours validate with zod,
 * core/api/router.ts). Fastify would otherwise load ajv and its serializer compiler, some 90 modules, when the app
 * is created: several MB of an idle server's memory (bench/footprint.ts).
 */
const fromFastify = createRequire(createRequire(import.meta.url).resolve('fastify'));
const lazyCompilers: Compilers = {
  buildValidator: (...args: Parameters<Factory<'buildValidator'>>) => (fromFastify('@fastify/ajv-compiler') as () => Factory<'buildValidator'>)()(...args),
  buildSerializer: (...args: Parameters<Factory<'buildSerializer'>>) =>
    (fromFastify('@fastify/fast-json-stringify-compiler') as () => Factory<'buildSerializer'>)()(...args),
};

/**
 * The management app on the bare domain (Fastify): coded JSON errors for everything it answers, a coded 404,
 * and `/health`. It answers on `server`, the node:http server that owns the socket, through the handler it
 * returns (Fastify's `serverFactory`). Made on the first request it answers (core/server.ts).
 */
export function createManagementApp(kernel: Kernel, server: http.Server): { app: FastifyInstance; handler: FastifyServerFactoryHandler } {
  let handler: FastifyServerFactoryHandler | null = null;
  const serverFactory = (made: FastifyServerFactoryHandler): http.Server => {
    handler = made;
    return server;
  };
  const management = Fastify({ logger: false, serverFactory, schemaController: { compilersFactory: lazyCompilers } });
  management.setErrorHandler((error: Error, _request, reply) => {
    if (isTenementError(error)) {
      const answer = toHttpError(error);
      if (answer.retryAfter !== undefined) void reply.header('retry-after', answer.retryAfter);
      if (answer.status === 401) void reply.header('www-authenticate', 'Bearer realm="tenement"');
      // Where it came from (a plugin's tap) is for operators: the management API says it, the edge does not.
      const origin = answer.plugin === undefined ? {} : { plugin: answer.plugin, hook: answer.hook };
      return void reply.status(answer.status).send({ error: { code: answer.code, message: answer.message, ...origin } });
    }
    // Fastify's own errors (bad JSON, wrong content type, body too large) are the client's: coded by their status.
    const answer = fromStatus((error as { statusCode?: number }).statusCode ?? 500, error.message);
    if (answer.status >= 500) kernel.log.error({ err: error.message }, 'management request failed');
    void reply.status(answer.status).send({ error: { code: answer.code, message: answer.message } });
  });
  management.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ error: { code: ErrorCodes.NOT_FOUND, message: `no endpoint ${request.method} ${request.url}` } });
  });
  management.get('/health', async () => ({
    status: 'ok',
    uptimeSeconds: Math.round((Date.now() - kernel.startedAt) / 1000),
    instances: kernel.instances.size,
  }));
  return { app: management, handler: handler! };
}
