import { z } from 'zod';
import { DNS_LABEL } from '../../core/config/schema.ts';
import { parseDuration } from '../../core/config/units.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { TokenStore } from './tokens.ts';

/** Ten years: far enough for anything meant to expire, small enough that the arithmetic stays exact. */
const MAX_EXPIRES_IN_MS = 10 * 365 * 86_400_000;

const expiresIn = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0 || ms > MAX_EXPIRES_IN_MS) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a positive duration up to 10 years, like '12h', '30d' or a number of milliseconds, got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return ms;
});

const createBody = z.strictObject({
  name: z.string().min(1).max(64),
  /** Without a tenant the token is an admin token. */
  tenant: z.string().regex(DNS_LABEL, "expected a DNS label: lowercase letters, digits and '-', 1 to 63 characters").optional(),
  expiresIn: expiresIn.optional(),
});

const idParams = z.strictObject({ id: z.string().min(1).max(64) });

/** Token management: admin tokens only (the router answers 403 to tenant tokens). */
export function registerRoutes(api: PluginContext['api'], tokens: TokenStore): void {
  api.route({
    method: 'POST',
    url: '/api/tokens',
    summary: 'Create a token (a tenant token with `tenant`, else an admin token); the secret is returned only here',
    tags: ['tokens'],
    access: 'admin',
    body: createBody,
    handler: ({ body, reply, audit }) => {
      const created = tokens.create({ name: body.name, tenant: body.tenant ?? null, expiresInMs: body.expiresIn ?? null });
      audit.target = `token:${created.id}`;
      // Never the secret: the audit log is readable through the API.
      audit.detail = `${created.kind} token '${created.name}'${created.tenant ? ` for tenant ${created.tenant}` : ''}`;
      reply.code(201);
      const { id, name, kind, tenant, token, createdAt, expiresAt } = created;
      return { id, name, kind, tenant, token, createdAt, expiresAt };
    },
  });

  api.route({
    method: 'GET',
    url: '/api/tokens',
    summary: 'List tokens (never their secrets), revoked and expired ones included',
    tags: ['tokens'],
    access: 'admin',
    handler: () => ({ tokens: tokens.list() }),
  });

  api.route({
    method: 'DELETE',
    url: '/api/tokens/:id',
    summary: 'Revoke a token; it stops working at once',
    tags: ['tokens'],
    access: 'admin',
    params: idParams,
    handler: ({ params, audit }) => {
      audit.target = `token:${params.id}`;
      const revoked = tokens.revoke(params.id);
      if (!revoked) throw new TenementError(ErrorCodes.NOT_FOUND, `unknown token '${params.id}'`);
      audit.detail = `${revoked.kind} token '${revoked.name}'`;
      return { id: revoked.id, revoked: true };
    },
  });
}
