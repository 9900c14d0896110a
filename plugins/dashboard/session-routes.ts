import type { FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { Identity } from '../../core/types.ts';
import { COOKIE, SECURE_COOKIE, recheck, requestSession } from './session-auth.ts';
import type { Session, SessionStore } from './sessions.ts';

const signInBody = z.strictObject({
  /** A bearer token (`tnm_...`); never in a URL, never echoed. */
  token: z.string().min(1).max(512),
});

const SIGNED_OUT = Object.freeze({ identity: null, csrf: null, expiresAt: null });

const LOOPBACK = /^(127\.|::1$|::ffff:127\.)/;

/**
 * Whether the browser reached us over TLS: our own socket, or a TLS edge on this host saying so. A remote
 * peer's `X-Forwarded-Proto` is not believed (it could make us send a cookie without Secure... or with it).
 */
export function overTls(request: FastifyRequest): boolean {
  if ((request.raw.socket as { encrypted?: boolean }).encrypted) return true;
  const proto = request.headers['x-forwarded-proto'];
  return typeof proto === 'string' && proto.trim().toLowerCase() === 'https' && LOOPBACK.test(request.socket.remoteAddress ?? '');
}

function setCookie(reply: FastifyReply, request: FastifyRequest, value: string, clear = false): void {
  const secure = overTls(request);
  const name = secure ? SECURE_COOKIE : COOKIE;
  const attributes = `HttpOnly; SameSite=Strict; Path=/${secure ? '; Secure' : ''}${clear ? '; Max-Age=0' : ''}`;
  void reply.header('set-cookie', `${name}=${value}; ${attributes}`);
}

/** POST/GET/DELETE /api/session: the dashboard's sign-in, page reload and sign-out. `fleet`: this server is in a
 * fleet (settings.fleet), so the page lists instances fleet-wide through /api/fleet/* (docs/dashboard.md). */
export function sessionRoutes(api: PluginContext['api'], sessions: SessionStore, fleet = false): void {
  const sessionAnswer = (sessions: SessionStore, session: Session): { identity: Identity; csrf: string; expiresAt: number; fleet: boolean } => ({
    identity: session.identity,
    csrf: session.csrf,
    expiresAt: sessions.expiresAt(session),
    fleet,
  });

  api.route({
    method: 'POST',
    url: '/api/session',
    summary: 'Sign in to the dashboard: exchange a token for an HttpOnly session cookie and a CSRF token',
    description:
      'Body { token }. The token is checked like a bearer token (same lock-out after failures per token prefix and ' +
      'address). Answers { identity, csrf, expiresAt } and sets the tenement_session cookie. See docs/dashboard.md.',
    tags: ['dashboard'],
    access: 'public',
    body: signInBody,
    handler: async ({ body, request, reply }) => {
      void reply.header('cache-control', 'no-store');
      // Exactly a bearer request to the router: the same auth taps, the same failure counting and 429.
      const identity = await api.authenticate({
        headers: { authorization: `Bearer ${body.token}` },
        socket: request.socket,
        method: request.method,
        url: request.url,
      });
      // A session this browser already had (or one planted in it) ends: one sign-in, one session.
      const previous = requestSession(sessions, request.headers);
      if (previous) sessions.end(previous.id);
      const session = sessions.create(body.token, identity);
      setCookie(reply, request, session.id);
      api.auditLog.record({
        actor: identity.name,
        tenant: identity.kind === 'tenant' ? identity.tenant : null,
        action: 'POST /api/session',
        target: 'dashboard',
        instanceId: identity.kind === 'tenant' ? identity.tenant : null,
        status: 200,
        detail: 'signed in to the dashboard',
      });
      return sessionAnswer(sessions, session);
    },
  });

  api.route({
    method: 'GET',
    url: '/api/session',
    summary: "Who the dashboard session (or token) is, with the session's CSRF token; all null when signed out",
    description: 'Public so that a signed-out page load is a 200 with identity null, not a failed request; a bad bearer token is still a 401.',
    tags: ['dashboard'],
    access: 'public',
    handler: async ({ request, reply }) => {
      void reply.header('cache-control', 'no-store');
      if (request.headers.authorization !== undefined) return { identity: await api.authenticate(request), csrf: null, expiresAt: null };
      const session = requestSession(sessions, request.headers);
      const identity = session ? await recheck(api, session, request.socket.remoteAddress ?? 'unix') : undefined;
      if (!session || !identity) {
        if (session) sessions.end(session.id);
        return SIGNED_OUT;
      }
      session.identity = identity;
      return sessionAnswer(sessions, session);
    },
  });

  api.route({
    method: 'DELETE',
    url: '/api/session',
    summary: 'Sign out of the dashboard: the session ends and its cookie is cleared',
    tags: ['dashboard'],
    access: 'token',
    handler: ({ request, reply, audit }) => {
      audit.target = 'dashboard';
      void reply.header('cache-control', 'no-store');
      const session = requestSession(sessions, request.headers);
      if (session) sessions.end(session.id);
      setCookie(reply, request, '', true);
      return { signedOut: true };
    },
  });
}
