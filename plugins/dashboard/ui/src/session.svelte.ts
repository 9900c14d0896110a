// Who is signed in. The token is posted once to /api/session and then forgotten: the server answers with an
// HttpOnly session cookie (which scripts cannot read) and a CSRF token kept here, in memory only.
import { api, setCsrf, whenUnauthorized } from './api.ts';
import type { Session } from './types.ts';

interface SessionAnswer {
  kind?: unknown;
  tenant?: unknown;
  name?: unknown;
  csrf?: unknown;
  csrfToken?: unknown;
  identity?: { kind?: unknown; tenant?: unknown; name?: unknown } | null;
  signedIn?: unknown;
  fleet?: unknown;
}

function parse(answer: SessionAnswer | null): Session | null {
  // A signed-out answer may be a 200 with `identity: null` (asked of the server: no 401 in the console on load).
  if (!answer || answer.signedIn === false || answer.identity === null) return null;
  const who = answer.identity ?? answer;
  const kind = who.kind === 'admin' || who.kind === 'tenant' ? who.kind : null;
  const csrf = typeof answer.csrf === 'string' ? answer.csrf : typeof answer.csrfToken === 'string' ? answer.csrfToken : null;
  if (!kind || csrf === null) return null;
  return {
    kind,
    tenant: typeof who.tenant === 'string' ? who.tenant : null,
    name: typeof who.name === 'string' ? who.name : null,
    csrf,
    fleet: answer.fleet === true,
  };
}

class SessionState {
  current = $state<Session | null>(null);
  checked = $state(false);
  /** Why the sign-in form is back, when a session ended under the page's feet. */
  endedMessage = $state<string | null>(null);

  constructor() {
    whenUnauthorized(() => this.ended());
  }

  get isAdmin(): boolean {
    return this.current?.kind === 'admin';
  }

  /** The session may have ended without a 401 reaching the page (only the event stream saw it): ask. */
  async recheck(): Promise<void> {
    if (!this.current) return;
    try {
      if (!parse(await api<SessionAnswer>('GET', '/api/session'))) this.ended();
    } catch {
      // A network failure says nothing about the session: the page keeps it.
    }
  }

  /** Is a session cookie already there (a reload, a second tab)? */
  async resume(): Promise<void> {
    try {
      this.set(parse(await api<SessionAnswer>('GET', '/api/session')));
    } catch {
      this.set(null);
    }
    this.checked = true;
  }

  async signIn(token: string): Promise<void> {
    const session = parse(await api<SessionAnswer>('POST', '/api/session', { token }));
    if (!session) throw new Error('the server answered without a session');
    this.endedMessage = null;
    this.set(session);
  }

  async signOut(): Promise<void> {
    try {
      await api('DELETE', '/api/session');
    } finally {
      this.set(null);
    }
  }

  private ended(): void {
    if (this.current) this.endedMessage = 'Your session ended (signed out, expired or its token revoked): sign in again.';
    this.set(null);
  }

  private set(session: Session | null): void {
    setCsrf(session?.csrf ?? '');
    this.current = session;
  }
}

export const session = new SessionState();
