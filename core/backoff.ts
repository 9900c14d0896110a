/**
 * Delay before restart number `attempt` (0-based): base·2^attempt capped at max, with "equal jitter" (a random
 * point in the upper half). Jitter spreads restarts of many crashing tenants apart; keeping the lower half out
 * means each delay is still at least as long as the previous one's ceiling halved, so delays keep growing.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
