import { randomBytes } from 'node:crypto';
import type { Identity } from '../../core/types.ts';

/** 256 random bits, base64url: 43 characters. */
export const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

export interface Session {
  readonly id: string;
  readonly csrf: string;
  /**
   * The token it was made from, kept in memory only: every request re-checks it through the `auth` hook, so
   * revoking or expiring the token ends the session at once (the token store keeps only hashes).
   */
  readonly token: string;
  identity: Identity;
  readonly createdAt: number;
  lastUsed: number;
  /** Open /api/events streams of this session, closed when it ends. */
  readonly streams: Set<() => void>;
}

export interface SessionLimits {
  idleMs: number;
  maxMs: number;
  maxSessions: number;
}

/** Sessions one token may hold at once (browsers, tabs signing in again). */
export const MAX_PER_TOKEN = 16;

const secret = (): string => randomBytes(32).toString('base64url');

/**
 * Server-side sessions, in memory: a restart signs everyone out (the UI signs in again). Bounded: past
 * `maxSessions` the least recently used one goes (the Map's order is use order: `touch` re-inserts).
 */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();

  constructor(private readonly limits: SessionLimits) {}

  get size(): number {
    return this.sessions.size;
  }

  create(token: string, identity: Identity, now = Date.now()): Session {
    const session: Session = { id: secret(), csrf: secret(), token, identity, createdAt: now, lastUsed: now, streams: new Set() };
    // One token cannot push everyone else's sessions out: past its own share its oldest session goes first.
    const own = [...this.sessions.values()].filter((s) => s.token === token);
    if (own.length >= MAX_PER_TOKEN) this.end(own[0]!.id);
    this.sessions.set(session.id, session);
    while (this.sessions.size > this.limits.maxSessions) this.end(this.sessions.keys().next().value!);
    return session;
  }

  /** The live session with this id, marked used; expired ones are ended on the way. */
  use(id: string, now = Date.now()): Session | undefined {
    if (!SESSION_ID.test(id)) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    if (this.expired(session, now)) {
      this.end(id);
      return undefined;
    }
    session.lastUsed = now;
    this.sessions.delete(id);
    this.sessions.set(id, session);
    return session;
  }

  expiresAt(session: Session): number {
    return Math.min(session.createdAt + this.limits.maxMs, session.lastUsed + this.limits.idleMs);
  }

  end(id: string): void {
    const session = this.sessions.get(id);
    if (!session) return;
    this.sessions.delete(id);
    for (const close of session.streams) close();
    session.streams.clear();
  }

  /** Ends expired sessions (a timer calls it, so idle ones do not wait for a request to go). */
  sweep(now = Date.now()): void {
    for (const session of [...this.sessions.values()]) if (this.expired(session, now)) this.end(session.id);
  }

  clear(): void {
    for (const id of [...this.sessions.keys()]) this.end(id);
  }

  private expired(session: Session, now: number): boolean {
    return now >= this.expiresAt(session);
  }
}
