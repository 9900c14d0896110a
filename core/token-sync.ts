/**
 * `ctx.tokens`: where the plugin that keeps bearer tokens (auth-bearer) and a plugin that replicates them
 * between servers (fleet) meet, through the kernel, so neither imports the other. The keeper serves its tokens
 * (list, apply a replicated one) and reports each local change; a replicator subscribes to the changes and
 * applies what other servers changed. Records carry the SHA-256 of a token, never the secret.
 */

/** A bearer token as servers exchange it (times are epoch ms; `lastUsedAt` stays local). */
export interface TokenRecord {
  id: string;
  name: string;
  kind: 'admin' | 'tenant';
  tenant: string | null;
  /** Hex SHA-256 of the secret. */
  hash: string;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
}

/** What the token keeper serves. */
export interface TokenKeeper {
  /** Every token it holds, revoked ones included. */
  list(): TokenRecord[];
  /**
   * Takes a record from another server: stores a new one, or merges a known one (a revocation is kept, never
   * undone); answers the record as kept, or null when refused (malformed, an id or hash clash).
   */
  apply(record: TokenRecord): TokenRecord | null;
}

export type TokenListener = (record: TokenRecord) => void;

export class TokenSync {
  private keeper: TokenKeeper | null = null;
  private readonly listeners = new Set<TokenListener>();
  private readonly onServed: Array<() => void> = [];

  /** Keeper side: one keeper per server (a second one is refused). */
  serve(keeper: TokenKeeper): void {
    if (this.keeper !== null) throw new Error('a token keeper is already registered');
    this.keeper = keeper;
    const waiting = [...this.onServed];
    this.onServed.length = 0;
    for (const fn of waiting) fn();
  }

  /** Replicator side: `fn` once a keeper serves (at once when one already does): plugins set up in any order. */
  whenServed(fn: () => void): void {
    if (this.keeper !== null) fn();
    else this.onServed.push(fn);
  }

  /** Keeper side: a token was created or revoked here. A listener that throws is the listener's problem. */
  changed(record: TokenRecord): void {
    for (const listener of this.listeners) {
      try {
        listener(record);
      } catch {
        // a replicator's failure must not fail the token route that reported the change
      }
    }
  }

  /** Whether some plugin keeps tokens on this server. */
  get served(): boolean {
    return this.keeper !== null;
  }

  /** Replicator side: every local change from now on; returns the unsubscribe. */
  subscribe(listener: TokenListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Replicator side: the keeper's tokens (none without a keeper). */
  list(): TokenRecord[] {
    return this.keeper?.list() ?? [];
  }

  /** Replicator side: a record from another server (null without a keeper, or when the keeper refused it). */
  apply(record: TokenRecord): TokenRecord | null {
    return this.keeper?.apply(record) ?? null;
  }
}
