import type { ServiceConfig, Tier } from './config/schema.ts';
import { LogBuffer } from './log-buffer.ts';
import { describeAddress } from './upstream-address.ts';
import type { ExitInfo, InstanceState, RunningHandle } from './types.ts';

export type HealthStatus = 'unknown' | 'healthy' | 'unhealthy';

type StateListener = (state: InstanceState) => void;

/** The list without `item`, or null when nothing is left (an idle instance holds no empty arrays). */
function without<T>(list: T[] | null, item: T): T[] | null {
  const rest = list?.filter((x) => x !== item) ?? [];
  return rest.length > 0 ? rest : null;
}

/**
 * An instance as plugins see it (PluginContext.instances, hook arguments): read-only. Changes go through
 * `ctx.lifecycle`, so the supervisor's state machine sees every one.
 */
export interface InstanceView {
  readonly key: string;
  readonly service: string;
  readonly id: string;
  readonly state: InstanceState;
  readonly weight: number;
  readonly handle: Readonly<RunningHandle> | null;
  readonly tier: Tier;
  readonly waking: boolean;
  /** Bumped on every spawn and stop: an answer computed for an earlier epoch is about a process that is gone. */
  readonly epoch: number;
  readonly inFlight: number;
  readonly lastActivity: number;
  readonly startedAt: number | null;
  readonly readyAt: number | null;
  readonly stateSince: number;
  readonly health: HealthStatus;
  readonly consecutiveHealthFailures: number;
  /** Failed periodic health checks ever counted for this instance (never reset: a counter for metrics). */
  readonly failedHealthChecks: number;
  readonly restarts: number;
  readonly lastExit: ExitInfo | null;
  readonly lastError: string | null;
  readonly config: ServiceConfig;
  readonly port: number | null;
  readonly logs: Pick<LogBuffer, 'query' | 'size' | 'bytesUsed'>;
  waitForState(targets: ReadonlySet<InstanceState>, timeoutMs: number, signal?: AbortSignal): Promise<InstanceState>;
  toJSON(): InstanceSnapshot;
}

/**
 * One copy of a service for one tenant. The supervisor owns its transitions; the proxy owns its counters.
 * Most instances of a big server are hibernated and never looked at, so what only a running or watched instance
 * needs (its log buffer, restart times, state and drain waiters) is made on first use: about a third of a
 * hibernated instance's heap (bench/footprint.ts).
 */
export class Instance implements InstanceView {
  readonly key: string;
  #state: InstanceState = 'created';
  weight: number;
  handle: RunningHandle | null = null;
  /** The tier it runs on: the service's isolation, or the fallback chosen at start-up. */
  tier: Tier;
  /** Coming back from hibernation (through any restarts on the way); its readiness is reported as `woken`. */
  waking = false;
  /** Bumped on every spawn so late events of a previous process are recognised and ignored. */
  epoch = 0;

  /** Requests being proxied right now; hibernation and drains wait for zero. */
  inFlight = 0;
  /** Last time proxied traffic started or finished (health checks do not count). */
  lastActivity = Date.now();
  startedAt: number | null = null;
  readyAt: number | null = null;
  stateSince = Date.now();

  health: HealthStatus = 'unknown';
  consecutiveHealthFailures = 0;
  failedHealthChecks = 0;
  /** Restarts ever made, for display. */
  restarts = 0;
  #restartTimes: number[] | null = null;
  /** Exponent of the next backoff delay; reset after a stable run. */
  backoffAttempt = 0;
  lastExit: ExitInfo | null = null;
  lastError: string | null = null;

  #logs: LogBuffer | null = null;
  readonly #logBufferBytes: number;
  private listeners: StateListener[] | null = null;
  private drainWaiters: Array<() => void> | null = null;

  constructor(
    readonly service: string,
    readonly id: string,
    public config: ServiceConfig,
    logBufferBytes: number,
  ) {
    // join() makes one flat string; a template literal keeps a rope of two more string objects for the life of
    // the instance.
    this.key = [service, id].join(':');
    this.tier = config.isolation;
    this.weight = config.weight;
    this.#logBufferBytes = logBufferBytes;
  }

  /** Its recent output (made on first use). */
  get logs(): LogBuffer {
    return (this.#logs ??= new LogBuffer(this.#logBufferBytes));
  }

  /** When recent restarts happened, for the maxRestarts-in-window rule (made on first use). */
  get restartTimes(): number[] {
    return (this.#restartTimes ??= []);
  }

  set restartTimes(times: number[]) {
    this.#restartTimes = times;
  }

  get port(): number | null {
    return this.handle?.address.port ?? null;
  }

  get state(): InstanceState {
    return this.#state;
  }

  /** Only the registry calls this, after checking the transition is allowed. */
  setState(state: InstanceState): void {
    this.#state = state;
    this.stateSince = Date.now();
    const listeners = this.listeners;
    if (listeners) for (const listener of listeners) listener(state);
  }

  /**
   * Resolves with the first state in `targets` the instance reaches (or is already in); rejects on timeout or
   * abort. Used by wake queues and readiness waits, so it never polls.
   */
  waitForState(targets: ReadonlySet<InstanceState>, timeoutMs: number, signal?: AbortSignal): Promise<InstanceState> {
    if (targets.has(this.state)) return Promise.resolve(this.state);
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.listeners = without(this.listeners, listener);
        signal?.removeEventListener('abort', onAbort);
      };
      const listener: StateListener = (state) => {
        if (!targets.has(state)) return;
        done();
        resolve(state);
      };
      const onAbort = (): void => {
        done();
        reject(signal?.reason ?? new Error('aborted'));
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs}ms waiting for ${this.key} to become ${[...targets].join(' or ')}`));
      }, timeoutMs);
      (this.listeners ??= []).push(listener);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  requestStarted(): void {
    this.inFlight += 1;
    this.lastActivity = Date.now();
  }

  requestFinished(): void {
    this.inFlight -= 1;
    this.lastActivity = Date.now();
    if (this.inFlight === 0 && this.drainWaiters) {
      const waiters = this.drainWaiters;
      this.drainWaiters = null;
      for (const wake of waiters) wake();
    }
  }

  /** Resolves when no request is in flight, or after `timeoutMs`; true when it drained. */
  drain(timeoutMs: number): Promise<boolean> {
    if (this.inFlight === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.drainWaiters = without(this.drainWaiters, onDrained);
        resolve(false);
      }, timeoutMs);
      const onDrained = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      (this.drainWaiters ??= []).push(onDrained);
    });
  }

  /** A plain snapshot for APIs, logs and tests. */
  toJSON(): InstanceSnapshot {
    return {
      key: this.key,
      service: this.service,
      id: this.id,
      state: this.state,
      tier: this.tier,
      health: this.health,
      weight: this.weight,
      pid: this.handle?.pid ?? null,
      port: this.port,
      address: this.handle ? describeAddress(this.handle.address) : null,
      inFlight: this.inFlight,
      restarts: this.restarts,
      startedAt: this.startedAt,
      readyAt: this.readyAt,
      lastActivity: this.lastActivity,
      stateSince: this.stateSince,
      lastExit: this.lastExit,
      lastError: this.lastError,
    };
  }
}

export interface InstanceSnapshot {
  key: string;
  service: string;
  id: string;
  state: InstanceState;
  tier: string;
  health: HealthStatus;
  weight: number;
  pid: number | null;
  port: number | null;
  /** Where the proxy reaches it: `host:port`, or `unix:/path` for a socket listener. */
  address: string | null;
  inFlight: number;
  restarts: number;
  startedAt: number | null;
  readyAt: number | null;
  lastActivity: number;
  stateSince: number;
  lastExit: ExitInfo | null;
  lastError: string | null;
}
