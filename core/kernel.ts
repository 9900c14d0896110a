import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { splitCommandMemo } from './command.ts';
import { healthSettings } from './config/health.ts';
import type { ResolvedConfig } from './config/loader.ts';
import { DNS_LABEL } from './config/schema.ts';
import { serviceConfig } from './config/lookup.ts';
import { chooseTiers, providedTiers, type TierChoice } from './tiers.ts';
import { reloadServices, type ConfigDiff } from './config-reload.ts';
import { DEFAULT_TIER_TRAITS, sameTraits, type TierTraits } from './tier-traits.ts';
import { ErrorCodes, TenementError, errorFields, errorMessage } from './errors.ts';
import { Faults } from './faults.ts';
import { HookTimings, createHooks, type KernelHooks } from './hooks.ts';
import type { Instance } from './instance.ts';
import { createLogger, type Logger } from './logger.ts';
import { killOrphans } from './orphans.ts';
import { setupPlugins, type PluginEntry } from './plugin.ts';
import { kernelAccess } from './kernel-access.ts';
import { PortAllocator, ephemeralOverlap } from './ports.ts';
import { InstanceUids } from './process/instance-uids.ts';
import { InstanceRegistry } from './registry.ts';
import { bumpRouting } from './dataplane/route-cache.ts';
import { createServer, type TenementServer } from './server.ts';
import type { ApiRouter } from './api/router.ts';
import type { Store } from './store.ts';
import { openSealedStore } from './state-dir.ts';
import { Supervisor } from './supervisor.ts';
import type { HealthResult, InstanceEvent, InstanceEventType, InstanceState } from './types.ts';

/** Output kept in memory for a hibernated instance: enough to see why it last stopped. */
const HIBERNATED_LOG_BYTES = 16_384;

export interface KernelOptions {
  config: ResolvedConfig;
  plugins: readonly PluginEntry[];
  logger?: Logger;
}

/**
 * The small core: it owns instances and their lifecycle and exposes hooks. It knows no tier and no feature;
 * runtimes and plugins tap its hooks during `start()`.
 */
export class Kernel {
  /** Replaced only by `reload` (its services and instances; settings and plugins stay as they started). */
  config: ResolvedConfig;
  readonly log: Logger;
  readonly timings = new HookTimings();
  /** Unexpected errors contained instead of ending the server (plugin taps, unhandled rejections), counted. */
  readonly faults: Faults;
  readonly hooks: KernelHooks;
  readonly instances: InstanceRegistry;
  readonly supervisor: Supervisor;
  readonly ports: PortAllocator;
  readonly metricsRegistry = new Registry();
  readonly startedAt = Date.now();
  store!: Store;
  /** Who each instance runs as when Tenement is root: a uid of its own (docs/isolation.md). */
  uids!: InstanceUids;
  server!: TenementServer;
  private tiers = new Map<string, TierChoice>();
  private readonly traits = new Map<string, TierTraits>();
  /** Names of the plugins that were set up, in set-up order. */
  plugins: string[] = [];
  private readonly closers: Array<() => void | Promise<void>> = [];
  /** Plugins' `ctx.instances.watch` listeners: every event, synchronously, after the state changed. */
  private readonly watchers = new Set<(event: InstanceEvent) => void>();
  private readonly pluginEntries: readonly PluginEntry[];
  private state: 'new' | 'starting' | 'started' | 'stopping' | 'stopped' = 'new';
  /** The reload in progress: reloads run one after the other. */
  private reloading: Promise<unknown> = Promise.resolve();

  constructor(options: KernelOptions) {
    this.config = options.config;
    this.log = options.logger ?? createLogger();
    this.pluginEntries = [...options.plugins, ...(options.config.plugins as PluginEntry[])];
    this.hooks = createHooks(this.timings);
    this.faults = new Faults(this.log);
    this.timings.onFault((hook, plugin, error) => this.faults.record(`hook:${hook}`, error, { plugin, hook }));
    this.instances = new InstanceRegistry(this.config.settings.logBuffer, (instance, event) => this.onTransition(instance, event));
    this.supervisor = new Supervisor(this);
    const range = this.config.settings.portRange;
    this.ports = new PortAllocator(range.from, range.to);
    const overlap = ephemeralOverlap(range.from, range.to);
    if (overlap) {
      this.log.warn(
        { portRange: range, ephemeral: overlap },
        'settings.portRange overlaps the ephemeral ports of outgoing connections (net.ipv4.ip_local_port_range): a client socket can take an instance port before the app binds it; choose a range outside it',
      );
    }
  }

  /** The management API: plugins add routes here during setup. */
  get api(): ApiRouter {
    return this.server.api;
  }

  /** Registers cleanup to run when the kernel stops (timers, sockets), last registered first. */
  onClose(closer: () => void | Promise<void>): void {
    this.closers.push(closer);
  }

  get url(): string {
    const address = this.server.listener.address() as AddressInfo;
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`;
  }

  instanceDir(service: string, id: string): string {
    return path.join(this.config.settings.dataDir, 'instances', service, id);
  }

  splitCommand(command: string): [string, string[]] {
    return splitCommandMemo(command);
  }

  /** Boots: state store, orphan clean-up, plugins, the HTTP server, then the instances that should run. */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new TenementError(ErrorCodes.INVALID_STATE, `kernel already ${this.state}`);
    this.state = 'starting';
    const settings = this.config.settings;
    // Modes checked and fixed (0700/0711 folders, 0600 files) before SQLite creates anything: core/state-dir.ts.
    this.store = openSealedStore(settings.dataDir, this.config.services, this.log);
    this.uids = new InstanceUids({
      store: this.store,
      range: settings.tenantUids,
      services: this.config.services,
      asRoot: process.getuid?.() === 0,
      log: this.log,
      instanceDir: (service, id) => this.instanceDir(service, id),
      exists: (service, id) => this.instances.get(service, id) !== undefined,
    });
    const orphans = killOrphans(path.join(settings.dataDir, 'instances'));
    if (orphans.length > 0) {
      this.log.warn({ orphans: orphans.map((o) => `${o.service}:${o.id} pid ${o.pid}`) }, 'killed processes left by a previous run');
    }
    // The server exists before plugins so they can add management routes in setup; it listens after.
    this.server = await createServer(this);
    this.plugins = await setupPlugins(this, kernelAccess(this), this.pluginEntries, this.config.pluginOptions);
    this.tiers = await chooseTiers(this.config.services, this.hooks, this.log);
    this.hooks.metrics.call(this.metricsRegistry);
    await this.server.listen(settings.port, settings.listen);
    this.state = 'started';
    this.log.info({ url: this.url, domain: settings.domain, plugins: this.plugins }, 'tenement is serving');
    this.restoreInstances();
  }

  /**
   * Applies a new config's services and instances to the running server, leaving unchanged services' instances,
   * the listener and the plugins alone (core/config-reload.ts); resolves with what changed and what was kept
   * because it needs a restart. One reload at a time.
   */
  reload(next: ResolvedConfig): Promise<ConfigDiff> {
    if (this.state !== 'started') return Promise.reject(new TenementError(ErrorCodes.INVALID_STATE, `cannot reload a server that is ${this.state}`));
    const run = this.reloading.then(() => reloadServices(this, next));
    this.reloading = run.catch(() => undefined);
    return run;
  }

  /** For reloadServices: the new service table and the tiers chosen for added and changed services. */
  replaceServices(services: ResolvedConfig['services'], instances: ResolvedConfig['instances'], tiers: ReadonlyMap<string, TierChoice>, removed: readonly string[]): void {
    this.config = { ...this.config, services, instances };
    bumpRouting();
    for (const [name, choice] of tiers) this.tiers.set(name, choice);
    for (const name of removed) this.tiers.delete(name);
  }

  providedTiers(): string[] {
    return providedTiers(this.hooks);
  }

  /**
   * A runtime says what its tier does with the parts other plugins put on the spawn spec (cgroups, DATA_DIR's
   * link), in its setup: those plugins read `tierTraits` instead of naming tiers. Unstated traits keep their
   * defaults; a second runtime of the same tier must state the same ones.
   */
  declareTier(tier: string, traits: Partial<TierTraits>): void {
    const full: TierTraits = { ...DEFAULT_TIER_TRAITS, ...traits };
    const known = this.traits.get(tier);
    if (known && !sameTraits(known, full)) {
      throw new TenementError(
        ErrorCodes.CONFLICT,
        `tier '${tier}' was declared twice with different traits: ${JSON.stringify(known)} and ${JSON.stringify(full)}`,
      );
    }
    this.traits.set(tier, full);
  }

  /** What the runtime of `tier` declared (DEFAULT_TIER_TRAITS when none did). */
  tierTraits(tier: string): Readonly<TierTraits> {
    return this.traits.get(tier) ?? DEFAULT_TIER_TRAITS;
  }

  /** The tier a service runs on: its isolation, or the fallback chosen at start-up. */
  tierOf(service: string): TierChoice {
    return this.tiers.get(service) ?? { tier: serviceConfig(this.config, service)?.isolation ?? 'process', fallbackReason: null };
  }

  /** Desired state from the store and `instances` from the config: running ones start, hibernated ones stay. */
  private restoreInstances(): void {
    const toStart: Instance[] = [];
    const known = new Set<string>();
    for (const row of this.store.listInstances()) {
      const service = serviceConfig(this.config, row.service);
      if (!service) {
        this.log.warn({ instance: `${row.service}:${row.id}` }, 'stored instance of a service no longer in the config: skipped');
        continue;
      }
      const instance = this.instances.create(row.service, row.id, service);
      instance.tier = this.tierOf(row.service).tier;
      instance.weight = row.weight;
      known.add(instance.key);
      if (row.desired === 'running') toStart.push(instance);
      else this.instances.transition(instance, row.desired, row.desired === 'hibernated' ? 'hibernated' : 'stopped', 'restored');
    }
    this.store.batch(() => {
      for (const [service, ids] of Object.entries(this.config.instances)) {
        for (const id of ids) {
          if (known.has(`${service}:${id}`)) continue;
          const instance = this.instances.create(service, id, serviceConfig(this.config, service)!);
          instance.tier = this.tierOf(service).tier;
          this.store.saveInstance(service, id, 'running', instance.weight);
          toStart.push(instance);
        }
      }
    });
    for (const instance of toStart) void this.supervisor.start(instance, 'boot');
  }

  /** Graceful shutdown: stop taking requests, stop every instance (drain, SIGTERM, SIGKILL), close plugins. */
  async stop(): Promise<void> {
    if (this.state === 'stopping' || this.state === 'stopped' || this.state === 'new') return;
    this.state = 'stopping';
    const closingServer = this.server?.close();
    await this.supervisor.shutdown(this.instances.list());
    for (const closer of [...this.closers].reverse()) {
      try {
        await closer();
      } catch (error) {
        // A plugin's closer (ctx.onClose) fails with its plugin and hook named: errorFields logs them.
        this.log.warn(errorFields(error), 'plugin close failed');
      }
    }
    this.server?.terminate();
    await closingServer;
    this.store?.close();
    this.state = 'stopped';
  }

  // ---- operations used by the API, the CLI and plugins ----

  private requireService(service: string): NonNullable<ResolvedConfig['services'][string]> {
    const config = serviceConfig(this.config, service);
    if (!config) throw new TenementError(ErrorCodes.UNKNOWN_SERVICE, `unknown service '${service}'`);
    return config;
  }

  /**
   * Registers an instance (persisted as desired-running) without starting it; `weight` (default: the service's)
   * is set before anything can route to it. An existing instance is returned as it is.
   */
  createInstance(service: string, id: string, options: { weight?: number } = {}): Instance {
    const config = this.requireService(service);
    if (!DNS_LABEL.test(id)) {
      throw new TenementError(ErrorCodes.BAD_NAME, `instance id '${id}' is not a DNS label`);
    }
    const existing = this.instances.get(service, id);
    if (existing) return existing;
    const instance = this.instances.create(service, id, config);
    instance.tier = this.tierOf(service).tier;
    if (options.weight !== undefined) instance.weight = options.weight;
    this.store.saveInstance(service, id, 'running', instance.weight);
    return instance;
  }

  /** Creates the instance if needed and starts it; resolves when it is running (or its start failed). */
  async spawnInstance(service: string, id: string): Promise<Instance> {
    const instance = this.createInstance(service, id);
    this.store.saveInstance(service, id, 'running', instance.weight);
    await this.supervisor.start(instance, 'spawn');
    return instance;
  }

  /** Stops the instance and forgets it (its data directory stays unless keepData is false). */
  async removeInstance(instance: Instance, reason = 'stopped by request'): Promise<void> {
    await this.supervisor.stop(instance, { to: 'stopped', reason, remove: true });
    this.store.removeInstance(instance.service, instance.id);
    this.instances.remove(instance, reason);
    // Its uid goes back to the range only with its data (keepData: false); kept data keeps its owner's uid.
    this.uids.release(instance.service, instance.id);
  }

  async hibernate(instance: Instance, reason = 'idle'): Promise<void> {
    if (instance.state !== 'running') return;
    await this.supervisor.stop(instance, { to: 'hibernated', reason, drain: false });
    // A thousand sleeping tenants should not each hold a full log buffer in memory.
    instance.logs.trimTo(HIBERNATED_LOG_BYTES);
    // A removal or shutdown that came in during the stop has the last word (and may have closed the store).
    if ((instance.state as InstanceState) === 'hibernated') this.store.saveInstance(instance.service, instance.id, 'hibernated', instance.weight);
  }

  setWeight(instance: Instance, weight: number): void {
    if (!Number.isInteger(weight) || weight < 0 || weight > 100) {
      throw new TenementError(ErrorCodes.BAD_REQUEST, `weight must be an integer from 0 to 100, got ${weight}`);
    }
    instance.weight = weight;
    bumpRouting();
    const desired = instance.state === 'hibernated' ? 'hibernated' : 'running';
    this.store.saveInstance(instance.service, instance.id, desired, weight);
  }

  /** Runs the service's health check once (http when it has a path, tcp otherwise). */
  async checkHealth(instance: Instance, timeoutMs?: number): Promise<HealthResult> {
    const check = healthSettings(instance.config, this.config.settings);
    const hook = this.hooks.health.get(check.kind);
    if (!hook || hook.taps.length === 0) return { ok: true, detail: `no '${check.kind}' health check plugin loaded` };
    const probe = { path: check.path, timeoutMs: timeoutMs ?? check.timeoutMs };
    const startedAt = performance.now();
    const answer = await hook
      .promise(instance, probe)
      .catch((error: unknown): HealthResult => ({ ok: false, detail: errorMessage(error) }));
    const result = answer ?? { ok: false, detail: 'no health check answered' };
    const observers = this.hooks.healthChecked;
    if (observers.taps.length !== 0) {
      observers.call(instance, { kind: check.kind, path: check.path, result, startedAt, durationMs: performance.now() - startedAt });
    }
    return result;
  }

  /** An event that is not a state change (spawned, unhealthy, oom), delivered like transitions. */
  emit(instance: Instance, type: InstanceEventType, reason?: string): void {
    const event: InstanceEvent = {
      type,
      instance: instance.key,
      service: instance.service,
      id: instance.id,
      from: instance.state,
      to: instance.state,
      at: Date.now(),
    };
    if (reason !== undefined) event.reason = reason;
    this.deliver(event);
  }

  private onTransition(instance: Instance, event: InstanceEvent): void {
    this.log.debug({ instance: instance.key, event: event.type, from: event.from, to: event.to, reason: event.reason }, 'state');
    this.deliver(event);
  }

  /** Calls `listener` with every lifecycle event; returns the unsubscribe. A throwing listener is contained. */
  watchEvents(listener: (event: InstanceEvent) => void): () => void {
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }

  private deliver(event: InstanceEvent): void {
    // Cached and mirrored routes (core/dataplane/route-cache.ts, the proxy workers) are re-read after any event.
    bumpRouting();
    for (const watcher of this.watchers) {
      try {
        watcher(event);
      } catch (error) {
        this.faults.record('watch', error, { event: event.type, instance: event.instance });
      }
    }
    // An observer hook: listeners never hold up the lifecycle, and a failing one (sync or async) is contained by
    // core/hooks.ts, recorded and reported with its plugin, so the call cannot throw here.
    if (this.hooks.stateChange.taps.length > 0) this.hooks.stateChange.call(event);
  }
}
