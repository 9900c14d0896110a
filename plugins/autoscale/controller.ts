/**
 * The control loop: every second, per service with `scale`, one sample of its metric (in flight summed over the
 * pool, read from the instances' own counts, or the requests finished since the last sample), one decision
 * (kpa.ts), bounded by the host's ceiling, then replicas made or drained. A replica is created with weight 0,
 * started, and given the service's weight once ready (it joins `{service}.{domain}` then); a drained replica gets
 * weight 0 first (no new request routed to it), then is removed (its in-flight requests finish: drainTimeout).
 */
import type { InstanceView } from '../../core/instance.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { decide, kpaState, type Decision } from './kpa.ts';
import { nextReplicaId, ReplicaTable } from './replicas.ts';
import type { AutoscaleSettings, ScaleConfig } from './schema.ts';
import type { Replica, ScaleEvent, ServiceScaleView, ServiceState } from './state.ts';

export type { ScaleEvent, ServiceScaleView } from './state.ts';

export const SAMPLE_MS = 1_000;
/** Scale events kept per service for the API. */
const MAX_EVENTS = 100;
/** Between a replica's weight going to 0 and its stop: routes already drawn (and proxy workers' mirrors) move on. */
const UNROUTE_GRACE_MS = 500;
/** Memory counted for a replica before any of its service's instances was measured (no limits.memory). */
export const UNMEASURED_REPLICA_BYTES = 64 * 1024 * 1024;
/** Memory is measured every this many samples (a stats read per running instance). */
const MEASURE_EVERY = 5;

const scaleOf = (ctx: PluginContext, service: string): ScaleConfig | undefined =>
  (ctx.services.get(service) as { scale?: ScaleConfig } | undefined)?.scale;

const round = (n: number): number => Math.round(n * 100) / 100;

export class Autoscaler {
  readonly #services = new Map<string, ServiceState>();
  readonly #table: ReplicaTable;
  #adopted = false;
  #ticks = 0;
  #closed = false;
  readonly #pending = new Set<Promise<unknown>>();
  /** Counted scale events, by service and direction, for tenement_autoscale_events_total. */
  readonly eventCounts = new Map<string, { service: string; direction: 'up' | 'down'; count: number }>();

  constructor(
    private readonly ctx: PluginContext,
    private readonly ceiling: AutoscaleSettings,
  ) {
    this.#table = new ReplicaTable(ctx.store);
  }

  get services(): ReadonlyMap<string, ServiceState> {
    return this.#services;
  }

  /** A request ended on one of the service's instances (the `rps` metric). */
  onRequest(instance: InstanceView, count = 1): void {
    const state = this.#services.get(instance.service);
    if (state) state.requests += count;
  }

  /** Whether the instance is one of the autoscaler's replicas (for `ten ps` and the API). */
  replicaOf(instance: InstanceView): Replica | undefined {
    return this.#services.get(instance.service)?.replicas.get(instance.id);
  }

  tick(now = Date.now()): void {
    if (this.#closed || !this.ctx.serving) return;
    this.#ticks += 1;
    if (!this.#adopted) this.#adopt();
    for (const [service, config] of this.#configured()) this.#tickService(service, config, now);
    // A service whose `scale` went away (reload) keeps no replica of the autoscaler's.
    for (const [service, state] of this.#services) {
      if (scaleOf(this.ctx, service)) continue;
      for (const replica of state.replicas.values()) if (replica.phase !== 'draining') this.#drain(service, state, replica, 'autoscale: scale removed from the service');
      if (state.replicas.size === 0) this.#services.delete(service);
    }
  }

  #configured(): Array<[string, ScaleConfig]> {
    const out: Array<[string, ScaleConfig]> = [];
    for (const [service] of this.ctx.services.entries()) {
      const config = scaleOf(this.ctx, service);
      if (config) out.push([service, config]);
    }
    return out;
  }

  #state(service: string, config: ScaleConfig, now: number): ServiceState {
    const key = JSON.stringify(config);
    let state = this.#services.get(service);
    if (!state) {
      state = { config, configKey: key, kpa: kpaState(config, SAMPLE_MS), replicas: new Map(), next: 1, requests: 0, lastSample: now, last: null, lastBound: null, events: [], measuredBytes: null };
      this.#services.set(service, state);
    } else if (state.configKey !== key) {
      // A reload changed the windows: the ring is made again for them (the old samples no longer fit).
      state.config = config;
      state.configKey = key;
      state.kpa = kpaState(config, SAMPLE_MS);
    }
    return state;
  }

  /** Replicas a previous run made (in the table): counted again, started if they are not running. */
  #adopt(): void {
    this.#adopted = true;
    for (const { service, id } of this.#table.all()) {
      const config = scaleOf(this.ctx, service);
      const instance = this.ctx.instances.get(service, id);
      if (!config || !instance) {
        if (instance) void this.#track(this.ctx.lifecycle.remove(instance, 'autoscale: service no longer scaled'));
        this.#table.delete(service, id);
        continue;
      }
      const state = this.#state(service, config, Date.now());
      const replica: Replica = { id, phase: 'starting', since: Date.now() };
      state.replicas.set(id, replica);
      this.#track(this.#bringUp(service, state, replica, instance));
    }
  }

  /** Instances of the pool: the operator's with weight above 0, and the autoscaler's that are not draining. */
  #pool(service: string, state: ServiceState): { current: number; ready: number; members: InstanceView[] } {
    let current = 0;
    let ready = 0;
    const members: InstanceView[] = [];
    for (const instance of this.ctx.instances.ofService(service)) {
      const replica = state.replicas.get(instance.id);
      if (replica) {
        if (replica.phase === 'draining') continue;
        current += 1;
        if (replica.phase === 'serving' && instance.state === 'running') ready += 1;
        members.push(instance);
        continue;
      }
      if (instance.weight <= 0 || instance.state === 'failed') continue;
      current += 1;
      if (instance.state === 'running') ready += 1;
      members.push(instance);
    }
    return { current, ready, members };
  }

  #tickService(service: string, config: ScaleConfig, now: number): void {
    const state = this.#state(service, config, now);
    this.#forgetGone(service, state);
    const pool = this.#pool(service, state);
    let value: number;
    if (config.metric === 'rps') {
      const seconds = Math.max(0.001, (now - state.lastSample) / 1000);
      value = state.requests / seconds;
      state.requests = 0;
    } else {
      value = 0;
      for (const member of pool.members) value += member.inFlight > 0 ? member.inFlight : 0;
    }
    state.lastSample = now;
    state.kpa.samples.push(now, value);
    if (this.#ticks % MEASURE_EVERY === 0 || state.measuredBytes === null) this.#measure(state, pool.members);

    const decision = decide(state.kpa, config, now, pool.current, pool.ready);
    state.last = decision;
    let target = decision.desired;
    let bound = decision.held;
    if (target > pool.current) {
      const room = this.#room(service, state);
      if (pool.current + room.count < target) {
        target = pool.current + Math.max(0, room.count);
        bound = room.why;
      }
    }
    if (target < pool.current) {
      // min 0: the last instance is hibernation's to stop (its idleTimeout), never the autoscaler's.
      if (target === 0) {
        target = 1;
        bound = 'min 0: the last replica is left to hibernation';
      }
      const drainable = [...state.replicas.values()].filter((r) => r.phase !== 'draining').length;
      const floor = pool.current - drainable;
      if (target < floor) {
        target = floor;
        bound = `operator-made instances are never drained (${floor} in the pool)`;
      }
    }
    state.lastBound = bound;
    if (target === pool.current) return;
    this.#record(service, state, decision, pool.current, target, bound);
    if (target > pool.current) for (let i = pool.current; i < target; i++) this.#scaleUp(service, state);
    else this.#scaleDown(service, state, pool.current - target);
  }

  /**
   * A replica removed by someone else (the API) is forgotten; one that failed for good (its restart policy gave
   * up) is removed, so it neither counts in the pool nor holds the host's ceiling.
   */
  #forgetGone(service: string, state: ServiceState): void {
    for (const replica of state.replicas.values()) {
      if (replica.phase === 'draining') continue;
      const instance = this.ctx.instances.get(service, replica.id);
      if (!instance) {
        state.replicas.delete(replica.id);
        this.#table.delete(service, replica.id);
      } else if (instance.state === 'failed' && replica.phase === 'serving') {
        this.ctx.log.warn({ service, id: replica.id, err: instance.lastError }, 'autoscale: replica failed; removed');
        this.#drain(service, state, replica, 'autoscale: replica failed');
      }
    }
  }

  /** How many replicas the host's ceiling still allows this service, and why not more. */
  #room(service: string, state: ServiceState): { count: number; why: string } {
    let replicas = 0;
    let bytes = 0;
    for (const [name, other] of this.#services) {
      replicas += other.replicas.size;
      bytes += other.replicas.size * this.#replicaBytes(name, other);
    }
    let count = this.ceiling.maxReplicas - replicas;
    let why = `host ceiling: settings.autoscale.maxReplicas ${this.ceiling.maxReplicas} (${replicas} replicas on this host)`;
    if (this.ceiling.maxMemory !== undefined) {
      const each = this.#replicaBytes(service, state);
      const byMemory = each > 0 ? Math.floor((this.ceiling.maxMemory - bytes) / each) : Infinity;
      if (byMemory < count) {
        count = byMemory;
        why = `host ceiling: settings.autoscale.maxMemory ${this.ceiling.maxMemory} bytes (${bytes} counted, ${each} per replica)`;
      }
    }
    return { count: Math.max(0, count), why };
  }

  #replicaBytes(service: string, state: ServiceState): number {
    const limit = (this.ctx.services.get(service) as { limits?: { memory?: number } } | undefined)?.limits?.memory;
    return limit ?? state.measuredBytes ?? UNMEASURED_REPLICA_BYTES;
  }

  #measure(state: ServiceState, members: readonly InstanceView[]): void {
    for (const member of members) {
      const handle = member.handle;
      if (member.state !== 'running' || !handle) continue;
      this.#track(
        handle.stats().then(
          (stats) => {
            if (stats.memoryBytes !== null && stats.memoryBytes > (state.measuredBytes ?? 0)) state.measuredBytes = stats.memoryBytes;
          },
          () => undefined,
        ),
      );
    }
  }

  #record(service: string, state: ServiceState, decision: Decision, from: number, to: number, bound: string | null): void {
    const panic = decision.panicking;
    const event: ScaleEvent = {
      at: new Date().toISOString(),
      service,
      metric: decision.metric,
      window: panic ? 'panic' : 'stable',
      windowMs: panic ? state.config.panicWindow : state.config.window,
      value: round(panic ? decision.panicValue : decision.stableValue),
      target: state.config.target,
      from,
      to,
      bound,
      reason: `${decision.metric} ${round(panic ? decision.panicValue : decision.stableValue)} over the ${panic ? 'panic' : 'stable'} window (${panic ? state.config.panicWindow : state.config.window} ms), target ${state.config.target} per replica: ${from} -> ${to}${bound ? ` (${bound})` : ''}`,
    };
    state.events.push(event);
    if (state.events.length > MAX_EVENTS) state.events.shift();
    const direction = to > from ? 'up' : 'down';
    const key = `${direction}\0${service}`;
    const counted = this.eventCounts.get(key) ?? { service, direction, count: 0 };
    counted.count += 1;
    this.eventCounts.set(key, counted);
    this.ctx.log.info({ service, metric: event.metric, window: event.window, value: event.value, from, to, bound }, `autoscale ${service}: ${event.reason}`);
  }

  #scaleUp(service: string, state: ServiceState): void {
    const taken = new Set(state.replicas.keys());
    const { id, n } = nextReplicaId(this.ctx, service, taken, state.next);
    state.next = n + 1;
    const replica: Replica = { id, phase: 'starting', since: Date.now() };
    state.replicas.set(id, replica);
    let instance: InstanceView;
    try {
      instance = this.ctx.lifecycle.create(service, id, { weight: 0 });
      this.#table.add(service, id);
    } catch (error) {
      state.replicas.delete(id);
      this.ctx.log.error({ service, id, err: String(error) }, 'autoscale: replica not created');
      return;
    }
    this.#track(this.#bringUp(service, state, replica, instance));
  }

  /** Starts it (weight 0); once running it gets the service's weight and joins the pool. A failed start is removed. */
  async #bringUp(service: string, state: ServiceState, replica: Replica, instance: InstanceView): Promise<void> {
    if (instance.weight !== 0 && instance.state !== 'running') this.ctx.lifecycle.setWeight(instance, 0);
    try {
      await this.ctx.lifecycle.start(instance, 'autoscale: scale up');
    } catch {
      // The state says it below.
    }
    if (replica.phase !== 'starting' || this.#closed) return;
    if (instance.state === 'running') {
      replica.phase = 'serving';
      replica.since = Date.now();
      const weight = this.ctx.services.get(service)?.weight ?? 100;
      this.ctx.lifecycle.setWeight(instance, weight > 0 ? weight : 1);
      return;
    }
    this.ctx.log.warn({ service, id: replica.id, state: instance.state, err: instance.lastError }, 'autoscale: replica did not start; removed');
    replica.phase = 'draining';
    await this.#remove(service, state, replica, instance, 'autoscale: replica did not start');
  }

  /** Drains `count` replicas: the ones not serving yet first, then the newest. */
  #scaleDown(service: string, state: ServiceState, count: number): void {
    const candidates = [...state.replicas.values()]
      .filter((r) => r.phase !== 'draining')
      .sort((a, b) => (a.phase === b.phase ? b.since - a.since : a.phase === 'starting' ? -1 : 1));
    for (const replica of candidates.slice(0, count)) this.#drain(service, state, replica, 'autoscale: scale down');
  }

  #drain(service: string, state: ServiceState, replica: Replica, reason: string): void {
    const instance = this.ctx.instances.get(service, replica.id);
    replica.phase = 'draining';
    replica.since = Date.now();
    if (!instance) {
      state.replicas.delete(replica.id);
      this.#table.delete(service, replica.id);
      return;
    }
    if (instance.weight !== 0) this.ctx.lifecycle.setWeight(instance, 0);
    this.#track(
      new Promise((resolve) => setTimeout(resolve, UNROUTE_GRACE_MS)).then(() =>
        // Closing: the kernel stops it; the table keeps it, so the next run adopts it.
        this.#closed ? undefined : this.#remove(service, state, replica, instance, reason),
      ),
    );
  }

  async #remove(service: string, state: ServiceState, replica: Replica, instance: InstanceView, reason: string): Promise<void> {
    try {
      // remove() drains: in-flight requests finish (bounded by drainTimeout) before the stop.
      await this.ctx.lifecycle.remove(instance, reason);
      this.#table.delete(service, replica.id);
    } catch (error) {
      this.ctx.log.error({ service, id: replica.id, err: String(error) }, 'autoscale: replica not removed');
    } finally {
      if (state.replicas.get(replica.id) === replica) state.replicas.delete(replica.id);
    }
  }

  #track<T>(promise: Promise<T>): Promise<T> {
    const tracked = promise.catch((error: unknown) => {
      this.ctx.faults.record('autoscale', error);
      return undefined as T;
    });
    this.#pending.add(tracked);
    void tracked.finally(() => this.#pending.delete(tracked));
    return tracked;
  }

  view(service: string): ServiceScaleView | undefined {
    const config = scaleOf(this.ctx, service) ?? null;
    const state = this.#services.get(service);
    if (!config && !state) return undefined;
    const pool = state ? this.#pool(service, state) : { current: 0, ready: 0 };
    return {
      service,
      config,
      current: pool.current,
      ready: pool.ready,
      desired: state?.last?.desired ?? null,
      decision: state?.last ?? null,
      bound: state?.lastBound ?? null,
      replicas: [...(state?.replicas.values() ?? [])].map((r) => ({ id: r.id, phase: r.phase, state: this.ctx.instances.get(service, r.id)?.state ?? null })),
      events: [...(state?.events ?? [])],
    };
  }

  /** Stops deciding; replicas stay (the kernel stops every instance itself and a restart adopts them again). */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#pending]);
  }
}
