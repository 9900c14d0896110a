/**
 * Failed authentication attempts per client address in a sliding window. Only the failing address is
 * locked out: a valid token from any other address keeps working, so an attacker cannot lock out the operator.
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly maxFailures = 10,
    private readonly windowMs = 60_000,
  ) {}

  /** Seconds until `address` may try again, or 0 when it is not locked out. */
  retryAfter(address: string, now = Date.now()): number {
    const recent = this.recent(address, now);
    if (recent.length < this.maxFailures) return 0;
    return Math.max(1, Math.ceil((recent[0]! + this.windowMs - now) / 1000));
  }

  fail(address: string, now = Date.now()): void {
    const recent = this.recent(address, now);
    recent.push(now);
    this.failures.set(address, recent);
    // Bound the table: forget the address seen least recently when it grows large.
    if (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
  }

  private recent(address: string, now: number): number[] {
    const list = this.failures.get(address);
    if (!list) return [];
    const recent = list.filter((t) => now - t < this.windowMs);
    if (recent.length === 0) this.failures.delete(address);
    else if (recent.length !== list.length) this.failures.set(address, recent);
    return recent;
  }
}
