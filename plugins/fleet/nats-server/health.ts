/**
 * What a nats-server's plain `/healthz` says, and what the watchdog does about it. Pure: the watchdog
 * (./watchdog.ts) feeds it observations; test/unit/nats-watchdog.test.ts feeds it recorded real bodies.
 *
 * Why the plain `/healthz` and not `?js-enabled-only=true`: only the plain one checks that every stream and
 * consumer replica on the server is current. nats-server 2.9.10 can leave a restarted ex-leader replica stuck
 * at what it recovered from disk for good (docs/fleet.md, "not current"), answering
 * `{"status":"unavailable","error":"JetStream stream '$G > KV_x' is not current"}` while the leader calls it
 * current; a graceful restart fixes it within about a second. `js-enabled-only` answers ok throughout.
 */

/** One poll's verdict. */
export type HealthVerdict =
  /** 200 ok. */
  | 'ok'
  /** A stream or consumer replica on this server is behind: the stuck-replica symptom when it lasts. */
  | 'not-current'
  /** Up but not serving JetStream (no meta leader yet, an election, JetStream starting): the cluster's business. */
  | 'unavailable'
  /** No answer at all (not listening, stopped, hung). */
  | 'unreachable';

const STREAM_OR_CONSUMER_NOT_CURRENT = /JetStream (stream|consumer) '.*' is not current/;

/** `status` null = no HTTP answer. `body` is the raw text. */
export function classifyHealthz(status: number | null, body: string): { verdict: HealthVerdict; error: string | null } {
  if (status === null) return { verdict: 'unreachable', error: body || 'no answer' };
  let parsed: { status?: unknown; error?: unknown } = {};
  try {
    const value: unknown = JSON.parse(body);
    if (value && typeof value === 'object') parsed = value as typeof parsed;
  } catch {
    // not JSON: judged by the status alone
  }
  const error = typeof parsed.error === 'string' ? parsed.error : null;
  if (status === 200 && (parsed.status === 'ok' || parsed.status === undefined)) return { verdict: 'ok', error: null };
  if (error !== null && STREAM_OR_CONSUMER_NOT_CURRENT.test(error)) return { verdict: 'not-current', error };
  return { verdict: 'unavailable', error: error ?? `HTTP ${status}` };
}

export interface WatchdogPolicy {
  /** A server not current for this long (ms) is restarted gracefully. */
  notCurrentMs: number;
  /** After a (re)start, no health-based restart for this long (ms): catch-up takes time. */
  graceMs: number;
}

export const DEFAULT_POLICY: WatchdogPolicy = { notCurrentMs: 15_000, graceMs: 15_000 };

/** What the watchdog remembers about one server between polls. */
export interface ServerWatch {
  /** When the current process started (ms). */
  startedAt: number;
  /** Since when it has been not current without a break (ms), or null. */
  notCurrentSince: number | null;
  last: HealthVerdict | null;
}

export function newWatch(now: number): ServerWatch {
  return { startedAt: now, notCurrentSince: null, last: null };
}

export type WatchdogAction = { kind: 'none' } | { kind: 'restart'; reason: string };

/**
 * Applies one poll to `watch` (updated in place) and says whether to restart. `healthyPeers`: how many other
 * servers of the cluster answered ok on this round; a replica can only catch up from a healthy peer, so with
 * none (a cluster that lost quorum) a restart would only add churn and is not done.
 */
export function decide(
  watch: ServerWatch,
  verdict: HealthVerdict,
  error: string | null,
  now: number,
  healthyPeers: number,
  policy: WatchdogPolicy = DEFAULT_POLICY,
): WatchdogAction {
  watch.last = verdict;
  if (verdict !== 'not-current') {
    watch.notCurrentSince = null;
    return { kind: 'none' };
  }
  watch.notCurrentSince ??= now;
  const stale = now - watch.notCurrentSince;
  if (stale < policy.notCurrentMs) return { kind: 'none' };
  if (now - watch.startedAt < policy.graceMs) return { kind: 'none' };
  if (healthyPeers === 0) return { kind: 'none' };
  return { kind: 'restart', reason: `not current for ${Math.round(stale / 1000)} s: ${error ?? 'not current'}` };
}

/** Back-off between restarts of a server that keeps exiting: 1 s, 2 s, 4 s ... up to 30 s. */
export function exitBackoffMs(recentExits: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, recentExits - 1));
}
