import { timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { AuthRequest, Identity } from '../../core/types.ts';
import type { Session, SessionStore } from './sessions.ts';

export const COOKIE = 'tenement_session';
/** Under TLS the cookie is `__Host-` prefixed: a browser takes it only Secure, for Path=/, without Domain, so a
 * tenant's app on a subdomain cannot plant one (same-site is not same-origin: `alice.notes.example.com` is
 * same-site with `example.com`). */
export const SECURE_COOKIE = `__Host-${COOKIE}`;

const MUTATING: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
/** Longer Cookie headers are not parsed (nothing of ours is that long): a huge header costs no work. */
const MAX_COOKIE_HEADER = 8_192;

/**
 * The session id the request carries, or undefined. Two different values under our names (a planted cookie
 * next to the real one: browsers send both) are refused outright rather than guessed between.
 */
export function sessionCookie(headers: IncomingHttpHeaders): string | undefined {
  const header = headers.cookie;
  if (typeof header !== 'string' || header.length > MAX_COOKIE_HEADER) return undefined;
  let found: string | undefined;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq < 0) continue;
    const name = pair.slice(0, eq).trim();
    if (name !== COOKIE && name !== SECURE_COOKIE) continue;
    const value = pair.slice(eq + 1).trim();
    if (found !== undefined && found !== value) return undefined;
    found = value;
  }
  return found;
}

function sameSecret(given: string | string[] | undefined, expected: string): boolean {
  if (typeof given !== 'string' || given.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

/** The session behind a request's cookie, when the request is authenticated by it (no Authorization header). */
export function requestSession(sessions: SessionStore, headers: IncomingHttpHeaders): Session | undefined {
  if (headers.authorization !== undefined) return undefined;
  const id = sessionCookie(headers);
  return id === undefined ? undefined : sessions.use(id);
}

/** Re-checks a session's token through the `auth` hook: its identity now, or undefined when it stopped working. */
export async function recheck(api: PluginContext['api'], session: Session, remoteAddress: string): Promise<Identity | undefined> {
  return api.identify({ headers: { authorization: `Bearer ${session.token}` }, remoteAddress, method: 'GET', url: '/api/session' });
}

/**
 * The `auth` tap: a request without an Authorization header whose cookie names a live session is the session's
 * token's identity, re-checked on every request (so a revoked or expired token ends the session). A mutating
 * request authenticated this way needs the session's CSRF token in `X-CSRF-Token`, else 403 TNM_ERR_CSRF.
 */
export function sessionAuth(ctx: Pick<PluginContext, 'api' | 'hooks'>, sessions: SessionStore): void {
  ctx.hooks.auth.tap(async (request: AuthRequest) => {
    const session = requestSession(sessions, request.headers);
    if (!session) return undefined;
    const identity = await recheck(ctx.api, session, request.remoteAddress);
    if (!identity) {
      sessions.end(session.id);
      return undefined;
    }
    session.identity = identity;
    if (MUTATING.has(request.method.toUpperCase()) && !sameSecret(request.headers['x-csrf-token'], session.csrf)) {
      throw new TenementError(ErrorCodes.CSRF, 'a change made with the dashboard session needs its X-CSRF-Token header');
    }
    return identity;
  });
}
