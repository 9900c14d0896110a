import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z, z as zod } from 'zod';
import { ErrorCodes, TenementError } from '../errors.ts';
import type { KernelHooks } from '../hooks.ts';
import { toHttpError } from '../http-errors.ts';
import type { AuthRequest, Identity } from '../types.ts';
import type { AuditLog } from './audit.ts';
import { requireAdmin } from './identity.ts';
import { openApiDocument } from './openapi.ts';
import { FailureLimiter, failureKey } from './rate-limit.ts';
import { parseInput } from './validate.ts';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** What authentication reads of a request: a Fastify request, or one a plugin builds (the dashboard's sign-in). */
export interface AuthenticatedRequest {
  headers: FastifyRequest['headers'];
  socket: { remoteAddress?: string | undefined };
  method: string;
  url: string;
}

/** What a mutating call concerned, for the audit log; handlers fill it in as they learn it. */
export interface AuditNote {
  target: string | null;
  instanceId: string | null;
  detail: string | null;
}

export interface ApiContext<P, Q, B> {
  /** null only on public routes. */
  identity: Identity | null;
  params: P;
  query: Q;
  body: B;
  request: FastifyRequest;
  reply: FastifyReply;
  audit: AuditNote;
}

export interface ApiRoute<P = unknown, Q = unknown, B = unknown> {
  method: HttpMethod;
  url: string;
  summary: string;
  description?: string;
  tags?: string[];
  /** public: no token; token: any valid token (handlers scope tenants); admin: admin tokens only (else 403). */
  access: 'public' | 'token' | 'admin';
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  handler(context: ApiContext<P, Q, B>): unknown;
}

const auditQuery = zod.strictObject({
  limit: zod.coerce.number().int().min(1).max(1000).default(100),
  /** Page: entries with an id below this one (the `next` of the previous page). */
  before: zod.coerce.number().int().min(1).optional(),
});

const MUTATING: ReadonlySet<HttpMethod> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * The one door to the management API: every route is authenticated through the `auth` hook (failing attempts
 * throttled per credential prefix and address, successes never), validated with zod, scoped, audited when it
 * changes something, and listed in the OpenAPI document.
 */
export class ApiRouter {
  readonly routes: ApiRoute[] = [];
  private readonly limiter = new FailureLimiter();
  /** The management app, once made (core/server.ts makes it on its first request): routes wait here until then. */
  private app: FastifyInstance | null = null;
  /** `METHOD path` with parameter names left out, as Fastify's router tells routes apart. */
  private readonly declared = new Set<string>();

  constructor(
    private readonly hooks: KernelHooks,
    readonly auditLog: AuditLog,
  ) {
    this.declared.add('GET /health'); // the management app's own (core/management-app.ts)
    this.route({
      method: 'GET',
      url: '/api/openapi.json',
      summary: 'This API as an OpenAPI 3.1 document',
      tags: ['meta'],
      access: 'token',
      handler: () => openApiDocument(this.routes),
    });
    this.route({
      method: 'GET',
      url: '/api/audit',
      summary: 'Audit log of mutating calls, newest first (a tenant sees what concerned its own instances)',
      tags: ['audit'],
      access: 'token',
      query: auditQuery,
      handler: ({ identity, query }) => {
        const entries = this.auditLog.list(identity!, query);
        return { entries, next: entries.length === query.limit ? entries.at(-1)!.id : null };
      },
    });
  }

  /**
   * Identity of the caller, or a 401; a 429 instead once the same credential prefix from the same address has
   * failed too often. The token is checked first: a valid one is never refused, whatever anyone else sent.
   */
  async authenticate(request: AuthenticatedRequest): Promise<Identity> {
    const address = request.socket.remoteAddress ?? 'unix';
    const identity = await this.identify({ headers: request.headers, remoteAddress: address, method: request.method, url: request.url });
    if (identity) return identity;
    const key = failureKey(request.headers.authorization, address);
    const wait = this.limiter.retryAfter(key);
    if (wait > 0) {
      throw new TenementError(ErrorCodes.RATE_LIMITED, `too many failed attempts with this token from ${address}; retry in ${wait}s`, {
        retryAfter: wait,
      });
    }
    this.limiter.fail(key);
    const why = request.headers.authorization ? 'invalid, expired or revoked token' : 'missing token: send Authorization: Bearer tnm_...';
    throw new TenementError(ErrorCodes.UNAUTHORIZED, why);
  }

  /**
   * Who the `auth` hook says this is, without counting a failure: for a plugin that holds a credential it was
   * given earlier (the dashboard's session re-checks its token on every request, so a revoked token ends it).
   */
  identify(request: AuthRequest): Promise<Identity | undefined> {
    return this.hooks.auth.promise(request);
  }

  /**
   * Adds a route. A second route with the same method and path is refused here, in the setup that declares it, as
   * Fastify would refuse it (its app is made later, on the first management request).
   */
  route<P, Q, B>(definition: ApiRoute<P, Q, B>): void {
    const key = `${definition.method} ${definition.url.replace(/:[^/]+/g, ':')}`;
    if (this.declared.has(key)) {
      throw new TenementError(ErrorCodes.CONFLICT, `the management API already has a route ${definition.method} ${definition.url}`);
    }
    this.declared.add(key);
    this.routes.push(definition as ApiRoute);
    if (this.app) this.register(this.app, definition as ApiRoute);
  }

  /** Gives the routes declared so far, and those declared from now on, to the management app. */
  attach(app: FastifyInstance): void {
    this.app = app;
    for (const definition of this.routes) this.register(app, definition);
  }

  private register<P, Q, B>(app: FastifyInstance, definition: ApiRoute<P, Q, B>): void {
    app.route({
      method: definition.method,
      url: definition.url,
      handler: async (request, reply) => {
        const identity = definition.access === 'public' ? null : await this.authenticate(request);
        const audit: AuditNote = { target: null, instanceId: null, detail: null };
        const audited = identity !== null && MUTATING.has(definition.method);
        try {
          if (definition.access === 'admin') requireAdmin(identity, definition.summary);
          const context: ApiContext<P, Q, B> = {
            identity,
            params: definition.params ? parseInput(definition.params, request.params, 'params') : (request.params as P),
            query: definition.query ? parseInput(definition.query, request.query, 'query') : (request.query as Q),
            body: definition.body ? parseInput(definition.body, request.body, 'body') : (request.body as B),
            request,
            reply,
            audit,
          };
          const result = await definition.handler(context);
          if (audited) this.record(identity, definition, audit, reply.statusCode);
          return result;
        } catch (error) {
          if (audited) this.record(identity, definition, { ...audit, detail: audit.detail ?? toHttpError(error).message }, toHttpError(error).status);
          throw error;
        }
      },
    });
  }

  private record(identity: Identity, route: ApiRoute, note: AuditNote, status: number): void {
    this.auditLog.record({
      actor: identity.name,
      tenant: identity.kind === 'tenant' ? identity.tenant : null,
      action: `${route.method} ${route.url}`,
      target: note.target,
      instanceId: note.instanceId,
      status,
      detail: note.detail,
    });
  }
}
