/**
 * The proxy policy, once for every path that forwards a tenant request (the fast path's Exchange, the
 * node:http Proxy, later the edge and fleet forwarding). Each path owns its bytes; what it does with a request
 * is decided here, in named phases over one per-request context (Pingora's `ctx` and phases):
 *
 *  1. pick      `pickCandidate`     — from a candidate index on, the first instance running or woken for it;
 *  2. send      (the path's own)    — connect, write, stream the answer;
 *  3. failure   `decideAfterFailure` — a failure before the answer: send again on a fresh connection, wait
 *                                     for the same instance's next run (phase 1 from attempt), go to the next
 *                                     candidate (phase 1 from attempt + 1), or fail; `upstreamFailure` is the
 *                                     answer a failure gets;
 *  4. report    `reportRequest`     — the `request` hook, once per request, however it ended.
 */
import { ErrorCodes } from '../errors.ts';
import type { KernelHooks } from '../hooks.ts';
import { httpError, toHttpError, type HttpError } from '../http-errors.ts';
import { Instance, type InstanceView } from '../instance.ts';
import { instanceOf } from '../plugin-context.ts';
import type { ProxyExchange } from '../types.ts';
import { wakeForRequest, type WaitingClient } from '../wake.ts';

/** Methods a proxy may send twice (RFC 9110 §9.2.1; TRACE left out, as most proxies refuse it): the one definition. */
const SAFE_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS']);

export function isSafeMethod(method: string): boolean {
  return SAFE_METHODS.has(method);
}

/**
 * What the policy knows of one request, whichever path carries it. The fast path's Exchange is one (it extends
 * this class, so the context costs no allocation of its own); the node:http path makes one per request. It is
 * also the `ProxyExchange` hooks see (wake, upstreamHeaders, request).
 */
export class RequestContext implements ProxyExchange {
  /** Index in `candidates` of the instance in use (or being woken). */
  attempt = 0;
  instance: Instance | null = null;
  /** Time spent waiting for wakes, every candidate's. */
  wakeMs = 0;
  /** The current candidate was already sent the request again on a fresh connection. */
  retried = false;
  /** The request already waited once for its instance to come back from a restart, hibernation or crash. */
  rewoken = false;
  /** The status the client got; 0 when none was sent. */
  status = 0;
  reported = false;
  /** Set by the upgrade path: a connection, never reported on the `request` hook. */
  upgrade = false;
  /** ProxyExchange.tracing: the tracing plugin's state for this request (a field: no WeakMap entry per request). */
  tracing: unknown = undefined;
  readonly startedAt = performance.now();

  constructor(
    readonly method: string,
    /** No request body: the request can be sent again whole. */
    readonly bodyless: boolean,
    readonly candidates: readonly InstanceView[],
    /** The client's request as the hooks see it: path and query, host name, flat headers, address. */
    readonly target: string,
    readonly hostname: string,
    private readonly rawHeaders: readonly string[],
    readonly remoteAddress: string,
    /** performance.now() when its head had been read, before routing. */
    readonly receivedAt: number,
  ) {}

  header(name: string): string | undefined {
    const raw = this.rawHeaders;
    let value: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name) value = value === undefined ? raw[i + 1]! : `${value}, ${raw[i + 1]!}`;
    }
    return value;
  }
}

/**
 * Lets `upstreamHeaders` taps (tracing) add, change or remove headers of the head about to go to `instance`.
 * Free when nothing taps it: callers check `hooks.upstreamHeaders.taps.length` first on the fast path.
 */
export function editUpstreamHeaders(hooks: KernelHooks, ctx: RequestContext, instance: Instance, headers: string[]): void {
  const hook = hooks.upstreamHeaders;
  if (hook.taps.length === 0) return;
  hook.call({ exchange: ctx, instance, headers });
}

/**
 * Whether a request's head may go upstream as received (its kept lines, forwarded-head.ts): no `upstreamHeaders`
 * tap, or every one only adds lines (TapOptions.adds) and the request has none under the names they add; their
 * lines are then pushed into an empty `headers` and appended (ReceivedHead). When the client sent one of those
 * names the head is rebuilt and the taps replace it (never a second line of the same name).
 */
export function headGoesAsReceived(hooks: KernelHooks, raw: readonly string[]): boolean {
  for (const tap of hooks.upstreamHeaders.taps as ReadonlyArray<{ adds?: readonly string[] }>) {
    const adds = tap.adds;
    if (adds === undefined) return false;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      for (const added of adds) if (name.length === added.length && name.toLowerCase() === added) return false;
    }
  }
  return true;
}

/**
 * Phase 1: the instance to send the request to, from candidate `from` on. A running candidate is returned at
 * once (no promise: the common case on the hot path); otherwise the candidates are woken in order through the
 * `wake` hook and the promise settles with the first awake, the last one's wake error, or null when the client
 * left (or there is no candidate). `ctx.attempt` and `ctx.instance` name the candidate in use throughout.
 */
export function pickCandidate(
  ctx: RequestContext,
  hooks: KernelHooks,
  client: WaitingClient,
  from: number,
): Instance | Promise<Instance | HttpError | null> {
  const view = ctx.candidates[from];
  if (view === undefined) return Promise.resolve(null);
  const instance = instanceOf(view);
  ctx.attempt = from;
  ctx.instance = instance;
  if (instance.state === 'running' && instance.handle) return instance;
  return wakeCandidates(ctx, hooks, client, from);
}

async function wakeCandidates(ctx: RequestContext, hooks: KernelHooks, client: WaitingClient, from: number): Promise<Instance | HttpError | null> {
  const { candidates } = ctx;
  for (let i = from; i < candidates.length; i++) {
    // A client gone while an earlier candidate woke is not worth waking another for.
    if (client.destroyed) return null;
    const instance = instanceOf(candidates[i]!);
    ctx.attempt = i;
    ctx.instance = instance;
    if (instance.state === 'running' && instance.handle) return instance;
    const waitStarted = performance.now();
    try {
      await wakeForRequest(hooks, instance, client, ctx);
    } catch (error) {
      ctx.wakeMs += performance.now() - waitStarted;
      if (i < candidates.length - 1) continue;
      return toHttpError(error);
    }
    ctx.wakeMs += performance.now() - waitStarted;
    return client.destroyed ? null : instance;
  }
  return null;
}

/** What a path knows when its upstream fails before the request was answered. */
export interface FailureFacts {
  /** Index of the failing candidate, and how many there are. */
  attempt: number;
  candidates: number;
  /** The instance accepted the connection. */
  connected: boolean;
  /** Response bytes came back (some may have reached the client): nothing can be sent again. */
  answered: boolean;
  /** The request timeout fired: the instance holds the request. */
  timedOut: boolean;
  bodyless: boolean;
  /** Body bytes left for the instance (the node:http path pipes them at once; the fast path holds them until connected). */
  bodySent: boolean;
  method: string;
  /** The connection was a kept-alive one, reused for this request. */
  reused: boolean;
  /** This candidate was already sent the request again once. */
  retried: boolean;
  /**
   * The instance is no longer the run the request was sent to: it is stopping, stopped or hibernated, or a new
   * run replaced it (a restart, a crash and its restart). Its old address now reaches nothing, or another run.
   */
  instanceGone: boolean;
  /** The request already waited once for its instance to come back. */
  rewoken: boolean;
}

export type FailureDecision = 'resend-fresh' | 'wait-instance' | 'next-candidate' | 'fail';

/** Phase 3: what to do after a failure. Pure: the decision table is test/unit/proxy-policy.test.ts. */
export function decideAfterFailure(facts: FailureFacts): FailureDecision {
  if (facts.answered || facts.timedOut) return 'fail';
  // The request can go out again whole: no body, or one still unread off the client.
  const replayable = facts.bodyless || !facts.bodySent;
  // A kept-alive connection the instance closed just as we reused it: sent again once on a new connection, to
  // the same run (a run that is ending or replaced is no place to send it again).
  if (facts.reused && replayable && !facts.retried && !facts.instanceGone) return 'resend-fresh';
  // What the instance cannot have acted on: never accepted (refused, or reset while dying), sent on a kept-alive
  // connection it closed unanswered, or safe to repeat (it died holding it).
  const unacted = replayable && (!facts.connected || (facts.reused && !facts.retried) || isSafeMethod(facts.method));
  if (!unacted) return 'fail';
  if (facts.attempt < facts.candidates - 1) return 'next-candidate';
  // No candidate left: the failure may be its run ending (an API restart, a hibernation or a crash racing the
  // request), which the kernel may not have seen yet. Once, the request waits for the run to change and goes to
  // the instance's next run, as a request arriving then would; a run that goes on unchanged fails it.
  return facts.rewoken ? 'fail' : 'wait-instance';
}

/** Whether `instance` is no longer the run (`handle`) a request was sent to, serving: the `instanceGone` fact. */
export function runGone(instance: Instance, handle: Instance['handle']): boolean {
  return instance.state !== 'running' || instance.handle === null || instance.handle !== handle;
}

/** How long a failed request on its last candidate waits for the instance's run to change ('wait-instance'). */
export const RUN_CHANGE_WAIT_MS = 1_000;
const RUN_CHANGE_POLL_MS = 10;

/**
 * 'wait-instance': true once `instance` is no longer on `run` (its exit seen, a stop or restart begun), false when
 * it still is after `ms` or `client` left. Polled: only a request that failed on its last candidate waits here,
 * and a run's exit is seen within milliseconds of its connections closing.
 */
export function awaitRunChange(instance: Instance, run: Instance['handle'], client: WaitingClient, ms = RUN_CHANGE_WAIT_MS): Promise<boolean> {
  if (runGone(instance, run)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const deadline = performance.now() + ms;
    const timer = setInterval(() => {
      if (runGone(instance, run)) done(true);
      else if (client.destroyed || performance.now() >= deadline) done(false);
    }, RUN_CHANGE_POLL_MS);
    const done = (changed: boolean): void => {
      clearInterval(timer);
      resolve(changed);
    };
  });
}

/** The answer to a failure decided 'fail' before any response: 504 too slow, 502 refused or broken. */
export function upstreamFailure(instance: Instance, timedOut: boolean, code: string | undefined, detail: string): HttpError {
  if (timedOut) {
    return httpError(ErrorCodes.UPSTREAM_TIMEOUT, `${instance.key} did not answer within ${instance.config.requestTimeout}ms`);
  }
  return code === 'ECONNREFUSED'
    ? httpError(ErrorCodes.UPSTREAM_REFUSED, `${instance.key} refused the connection`)
    : httpError(ErrorCodes.UPSTREAM_ERROR, `${instance.key}: ${detail}`);
}

/** Phase 4: tells `request` hook listeners (metrics) how the request ended; once, and only once it had an instance. */
export function reportRequest(hooks: KernelHooks, ctx: RequestContext): void {
  if (ctx.reported || ctx.instance === null) return;
  ctx.reported = true;
  const hook = hooks.request;
  if (hook.taps.length === 0) return;
  hook.call({
    instance: ctx.instance,
    method: ctx.method,
    status: ctx.status,
    durationMs: performance.now() - ctx.startedAt,
    wakeMs: ctx.wakeMs,
    exchange: ctx,
  });
}
