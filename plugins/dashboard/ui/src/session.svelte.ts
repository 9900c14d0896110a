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
  };
}

class SessionState {
  current = $state<Session | null>(null);
  checked = $state(false);

  constructor() {
    whenUnauthorized(() => this.ended());
  }

  get isAdmin(): boolean {
    return this.current?.kind === 'admin';
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
    this.set(null);
  }

  private set(session: Session | null): void {
    setCsrf(session?.csrf ?? '');
    this.current = session;
  }
}

export const session = new SessionState();
