/** Characters of the presented credential that name its bucket: `tnm_` and 8 of its 43 random characters. */
const CREDENTIAL_PREFIX_CHARS = 12;

/**
 * The bucket a failed attempt counts in: the first characters of the credential it presented (or 'none') and
 * the client address. Tenants and the operator often share an address (127.0.0.1): keyed on the address alone,
 * any tenant could fill the operator's bucket.
 */
export function failureKey(authorization: string | undefined, address: string): string {
  const credential = authorization?.trim().replace(/^\S+\s+/, '') ?? '';
  return `${credential === '' ? 'none' : credential.slice(0, CREDENTIAL_PREFIX_CHARS)}\u0000${address}`;
}

/**
 * Failed authentication attempts per bucket (see `failureKey`) in a sliding window. It throttles failures,
 * never successes: the router asks it only about an attempt that already failed, so a valid token is accepted
 * whatever other clients (or the same address) sent before.
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly maxFailures = 10,
    private readonly windowMs = 60_000,
    private readonly maxKeys = 10_000,
  ) {}

  /** Seconds until `key` may fail again without a 429, or 0 when it is not throttled. */
  retryAfter(key: string, now = Date.now()): number {
    const recent = this.recent(key, now);
    if (recent.length < this.maxFailures) return 0;
    return Math.max(1, Math.ceil((recent[0]! + this.windowMs - now) / 1000));
  }

  fail(key: string, now = Date.now()): void {
    const recent = this.recent(key, now);
    recent.push(now);
    // Only the last maxFailures times matter for the decision; older ones would only grow the list.
    if (recent.length > this.maxFailures) recent.splice(0, recent.length - this.maxFailures);
    // Re-inserted so the Map's order is least recently failed first: that one goes when the table is full.
    this.failures.delete(key);
    this.failures.set(key, recent);
    while (this.failures.size > this.maxKeys) this.failures.delete(this.failures.keys().next().value!);
  }

  get size(): number {
    return this.failures.size;
  }

  private recent(key: string, now: number): number[] {
    const list = this.failures.get(key);
    if (!list) return [];
    const recent = list.filter((t) => now - t < this.windowMs);
    if (recent.length === 0) this.failures.delete(key);
    else if (recent.length !== list.length) this.failures.set(key, recent);
    return recent;
  }
}
