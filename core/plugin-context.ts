/**
 * What a plugin meets: one PluginContext per plugin, made by the kernel when the plugin is set up. It carries
 * the plugin's name into everything the plugin does (tap names, log lines, close errors, its store tables), gives
 * read-only views of instances, and turns every change of an instance into a named capability that goes
 * through the supervisor's state machine. The Kernel itself is not handed out: a plugin cannot replace another
 * plugin's handle, write an instance's state, or reach the supervisor.
 */
import type { Registry } from 'prom-client';
import type { ApiRouter } from './api/router.ts';
import type { ServiceConfig, Settings } from './config/schema.ts';
import { ErrorCodes, TenementError, pluginError } from './errors.ts';
import { ownFacts } from './describe-facts.ts';
import type { Faults } from './faults.ts';
import type { Checkpointer, CheckpointRequest, InstanceFacts, KernelHooks, RestoreCheckpointRequest } from './hooks.ts';
import { Instance, type InstanceView } from './instance.ts';
import type { Kernel } from './kernel.ts';
import type { Logger } from './logger.ts';
import type { MigrationStep } from './store.ts';
import type { TierTraits } from './tier-traits.ts';
import type { TierChoice } from './tiers.ts';
import type { TokenSync } from './token-sync.ts';
import type { WasmPool } from './wasm/pool.ts';
import { sharedWasmPool } from './wasm/shared.ts';
import type { EdgeTraffic, HealthResult, InstanceEvent, InstanceEventType, InstanceState, RequestInfo, RouteTarget } from './types.ts';
import type { ConnectionRoute } from './dataplane/own-routes.ts';
import type net from 'node:net';
import { addsProblem } from './dataplane/tapped-headers.ts';

/** Where a tap runs among the others of its hook: lower first. `enforce: 'pre'` plugins default to -100, 'post' to 100. */
export interface TapOptions {
  stage?: number;
  /**
   * `upstreamHeaders` only: the tap only adds header lines, under these names (lowercase), and replaces any the
   * client sent under them. A request with none of them then goes upstream as received plus the tap's lines (the
   * tap gets `headers` empty, to push into); one with any of them is rebuilt and the tap sees every line, as a tap
   * without `adds` always does.
   */
  adds?: readonly string[];
}

type Awaitable<T> = T | Promise<T>;

/** One hook as a plugin sees it: `tap` with the plugin's name filled in. Async hooks take a sync or async fn. */
export interface PluginHook<Args extends unknown[], Result> {
  tap(fn: (...args: Args) => Awaitable<Result>, options?: TapOptions): void;
}

/** A hook keyed by tier or check kind (`spawn`, `probe`, `health`). */
export interface PluginHookMap<Args extends unknown[], Result> {
  for(key: string): PluginHook<Args, Result>;
}

type HookArgs<H> = H extends { call(...args: infer A): unknown } ? A : H extends { promise(...args: infer A): unknown } ? A : never;
type HookResult<H> = H extends { promise(...args: never[]): Promise<infer R> } ? R : H extends { call(...args: never[]): infer R } ? R : never;
type MapHook<M> = M extends { for(key: string): infer H } ? H : never;

/** Every kernel hook, as a plugin taps it. */
export type PluginHooks = {
  [K in keyof KernelHooks]: KernelHooks[K] extends { for(key: string): unknown }
    ? PluginHookMap<HookArgs<MapHook<KernelHooks[K]>>, HookResult<MapHook<KernelHooks[K]>>>
    : PluginHook<HookArgs<KernelHooks[K]>, HookResult<KernelHooks[K]>>;
};

/** Read-only access to every instance. */
export interface InstanceDirectory {
  get(service: string, id: string): InstanceView | undefined;
  getByKey(key: string): InstanceView | undefined;
  list(filter?: { service?: string; state?: InstanceState }): InstanceView[];
  ofService(service: string): readonly InstanceView[];
  readonly size: number;
  /** Every lifecycle event (transitions and notices), after the state changed; returns an unsubscribe. */
  watch(listener: (event: InstanceEvent) => void): () => void;
  /** What plugins know of it (the `describe` hook: `oomKills`, `storage`...); a failing tap costs its facts only. */
  describe(instance: InstanceView): Promise<InstanceFacts>;
}

/** Changes to instances, each through the supervisor's state machine. */
export interface Lifecycle {
  /** Registers an instance (persisted, not started); an existing one is returned as it is. */
  create(service: string, id: string, options?: { weight?: number }): InstanceView;
  /** Starts it (creating it if needed); resolves once it is running or its start failed. Concurrent calls share one spawn. */
  start(instance: InstanceView, reason?: string): Promise<void>;
  /** Creates it if needed, records that it should run (also across a server restart, even if this start fails) and starts it. */
  spawn(service: string, id: string): Promise<InstanceView>;
  /** A manual restart: forgets earlier failures, stops and starts afresh. */
  restart(instance: InstanceView, reason?: string): Promise<void>;
  hibernate(instance: InstanceView, reason?: string): Promise<void>;
  /** Stops and forgets it (its data stays unless keepData says otherwise). */
  remove(instance: InstanceView, reason?: string): Promise<void>;
  setWeight(instance: InstanceView, weight: number): void;
  /** A check passed: the instance is healthy and its failure count starts over. */
  markHealthy(instance: InstanceView): void;
  /** One check failed: counted; returns the consecutive failures so far. */
  markCheckFailed(instance: InstanceView): number;
  /** Health failed for good: restart under the restart policy, as for a crash. */
  markUnhealthy(instance: InstanceView, detail: string): Promise<void>;
  /** Whether the instance is being removed (a start for it would be refused). */
  isRemoved(instance: InstanceView): boolean;
  /** Failures (crashes, failed starts, failed health) so far: a waiter that saw none since it arrived may retry. */
  failures(instance: InstanceView): number;
  /** An event that is not a transition (`oom`, `storage-warning`...), delivered to every watcher. */
  emit(instance: InstanceView, type: InstanceEventType, reason?: string): void;
  /**
   * The instance had traffic that did not go through the built-in proxy (an external edge's counters): not idle
   * now. With `traffic` (the requests the edge counted since its previous report), the `edgeTraffic` hook gets them.
   */
  touch(instance: InstanceView, traffic?: Omit<EdgeTraffic, 'instance'>): void;
}

/** Service configs by name, looked up as own keys (a service named `constructor` is data). */
export interface ServiceDirectory {
  get(name: string): ServiceConfig | undefined;
  names(): string[];
  entries(): Array<[string, ServiceConfig]>;
}

/** The plugin's own tables in the state database, versioned under its name. */
export interface PluginStore {
  /** Applies the plugin's schema steps (append-only, each once, in order). */
  migrate(steps: readonly MigrationStep[]): void;
  readonly db: Kernel['store']['db'];
}

export interface TierDirectory {
  /** A runtime says what its tier does with cgroups, DATA_DIR's link and tenant uids (see TierTraits). */
  declare(tier: string, traits: Partial<TierTraits>): void;
  traits(tier: string): Readonly<TierTraits>;
  /** Tiers some loaded runtime spawns. */
  provided(): string[];
  /** The tier a service runs on (its isolation, or the fallback chosen at start-up). */
  of(service: string): TierChoice;
}

/** The proxy, for a plugin that accepts connections of its own (service discovery's listeners on private networks). */
export interface ProxyAccess {
  /**
   * Serves `socket` (accepted by the plugin, its net.Server made with `allowHalfOpen: true`) through the proxy's
   * request path (wake, hibernation activity, lb, metrics, tracing), each request routed by `route` instead of
   * the `route` hook. What `route` leaves unanswered, or gives to the management surface, is refused (404).
   */
  accept(socket: net.Socket, route: ConnectionRoute): void;
  /**
   * What the `route` hook answers for a request, through the route cache (what a `route` of `accept` usually defers
   * to): synchronous on a cache hit, so a caller that passes the answer on as it is adds no promise.
   */
  route(info: RequestInfo): RouteTarget | undefined | Promise<RouteTarget | undefined>;
}

/** Tenant uids (settings.tenantUids), for a plugin that deletes what an instance left behind. */
export interface TenantUids {
  /** Frees the instance's uid once nothing of it is left (no registered instance, no DATA_DIR); true when freed. */
  release(service: string, id: string): boolean;
}

export interface PluginContext<Options = unknown> {
  readonly name: string;
  /** The plugin's own options: `pluginOptions[name]`, or the second element of a `[plugin, options]` entry. */
  readonly config: Options;
  readonly settings: Readonly<Settings>;
  readonly services: ServiceDirectory;
  readonly hooks: PluginHooks;
  /** The server log, every line carrying `plugin: name`. */
  readonly log: Logger;
  /** Cleanup when the server stops (last registered first); a failure is logged naming the plugin. */
  onClose(closer: () => void | Promise<void>): void;
  readonly instances: InstanceDirectory;
  readonly lifecycle: Lifecycle;
  readonly store: PluginStore;
  /** The management API: routes are authenticated, validated, audited and documented there. */
  readonly api: ApiRouter;
  readonly tiers: TierDirectory;
  readonly tenantUids: TenantUids;
  /** The shared prom-client registry, for collectors registered in setup or in a `metrics` tap. */
  readonly metrics: Registry;
  /** Contained failures, counted as `tenement_internal_errors_total{where}`. */
  readonly faults: Faults;
  /** configDir: the config file's folder, against which relative paths in options are resolved. */
  readonly paths: { readonly dataDir: string; readonly configDir: string; instanceDir(service: string, id: string): string };
  /** The server's one wasm pool, shared by the wasm tier and wasm plugins (made on first use, closed at stop). */
  wasmPool(): WasmPool;
  /** Runs the service's health check once (it changes nothing: counting and restarting are the caller's). */
  checkHealth(instance: InstanceView, timeoutMs?: number): Promise<HealthResult>;
  /** The base URL the server listens on (after start-up). */
  readonly url: string;
  /**
   * Whether the server listens: stored instances are restored right after, so before it the instance directory
   * is empty and every instance would look removed (timers that clean up after removed instances wait for it).
   */
  readonly serving: boolean;
  /** Names of the plugins set up, in order (after start-up). */
  readonly plugins: readonly string[];
  /** Call counts and durations per `hook/plugin`. */
  readonly timings: Kernel['timings'];
  /** Bearer tokens between the plugin that keeps them and one that replicates them to other servers (core/token-sync.ts). */
  readonly tokens: TokenSync;
  /** Connections a plugin accepted, served through the proxy with a route of its own. */
  readonly proxy: ProxyAccess;
  /** Live migration (the fleet's move): asks the `checkpoint` and `restoreCheckpoint` taps (core/hooks.ts). */
  readonly migration: MigrationAccess;
}

export interface MigrationAccess {
  /** A Checkpointer for the instance, a sentence saying why it cannot be saved, or undefined when no plugin can. */
  checkpoint(request: CheckpointRequest): Promise<Checkpointer | string | undefined>;
  /** Hands received images to the plugin that restores them at the instance's next spawn: true when one took them. */
  restore(request: RestoreCheckpointRequest): Promise<boolean>;
}

/** The Instance behind a view: views handed to plugins are the registry's own objects, typed read-only. */
export function instanceOf(view: InstanceView): Instance {
  if (view instanceof Instance) return view;
  throw new TenementError(ErrorCodes.INVALID_STATE, `not an instance of this kernel: ${String((view as { key?: unknown }).key)}`);
}

const STAGE = { pre: -100, normal: 0, post: 100 } as const;

interface Tappable {
  tap(options: { name: string; stage: number }, fn: (...args: unknown[]) => unknown): void;
  tapPromise?(options: { name: string; stage: number }, fn: (...args: unknown[]) => Promise<unknown>): void;
}

/**
 * A hook whose taps may answer asynchronously (taps go in with tapPromise). Every tapable hook has `promise()`,
 * sync ones included, and their tapPromise throws: the class (SyncHook, SyncBailHook...) tells them apart.
 */
function isAsyncHook(hook: object): boolean {
  return !(hook.constructor?.name ?? '').startsWith('Sync');
}

function pluginHook(hook: Tappable, name: string, defaultStage: number): PluginHook<unknown[], unknown> {
  return {
    tap(fn, options = {}) {
      const addsFault = options.adds ? addsProblem(options.adds) : null;
      if (addsFault !== null) throw new TenementError(ErrorCodes.PLUGIN_SETUP, `plugin ${name}: a tap's ${addsFault}`, { plugin: name });
      const tapOptions = { name, stage: options.stage ?? defaultStage, ...(options.adds ? { adds: options.adds.map((n) => n.toLowerCase()) } : {}) };
      if (isAsyncHook(hook) && hook.tapPromise) hook.tapPromise(tapOptions, async (...args: unknown[]) => fn(...args));
      else hook.tap(tapOptions, fn as (...args: unknown[]) => unknown);
    },
  };
}

function pluginHooks(hooks: KernelHooks, name: string, stage: number, faults: Faults): PluginHooks {
  const out: Record<string, unknown> = {};
  for (const [key, hook] of Object.entries(hooks)) {
    out[key] =
      typeof (hook as { for?: unknown }).for === 'function'
        ? { for: (tier: string) => pluginHook((hook as { for(k: string): Tappable }).for(tier), name, stage) }
        : pluginHook(hook as Tappable, name, stage);
  }
  // Each plugin describes an instance in a facts object of its own; a key two plugins set is a recorded clash.
  const describe = out.describe as PluginHooks['describe'];
  out.describe = { tap: (fn, options) => describe.tap(ownFacts(name, fn, faults), options) } satisfies PluginHooks['describe'];
  return out as PluginHooks;
}

/** One context per plugin; `closers` collects its onClose callbacks with the plugin's name. */
export function createPluginContext<Options>(
  kernel: Kernel,
  plugin: { name: string; enforce?: 'pre' | 'post' },
  options: Options,
  access: KernelAccess,
): PluginContext<Options> {
  const name = plugin.name;
  const log = kernel.log.child({ plugin: name });
  return {
    name,
    config: options,
    settings: kernel.config.settings,
    services: access.services,
    hooks: pluginHooks(kernel.hooks, name, STAGE[plugin.enforce ?? 'normal'], kernel.faults),
    log,
    onClose: (closer) =>
      kernel.onClose(async () => {
        try {
          await closer();
        } catch (error) {
          // A coded error keeps its code; either way it names the plugin and `onClose`.
          throw pluginError(error, name, 'onClose');
        }
      }),
    instances: access.instances,
    lifecycle: access.lifecycle,
    store: {
      migrate: (steps) => kernel.store.migrateOwner(name, steps),
      get db() {
        return kernel.store.db;
      },
    },
    get api() {
      return kernel.api;
    },
    tiers: access.tiers,
    tenantUids: access.tenantUids,
    metrics: kernel.metricsRegistry,
    faults: kernel.faults,
    paths: {
      dataDir: kernel.config.settings.dataDir,
      configDir: kernel.config.source.dir,
      instanceDir: (service, id) => kernel.instanceDir(service, id),
    },
    wasmPool: () => sharedWasmPool(kernel),
    checkHealth: (instance, timeoutMs) => kernel.checkHealth(instanceOf(instance), timeoutMs),
    get url() {
      return kernel.url;
    },
    get serving() {
      return kernel.server?.listener.listening === true;
    },
    get plugins() {
      return kernel.plugins;
    },
    timings: kernel.timings,
    tokens: access.tokens,
    proxy: access.proxy,
    migration: {
      checkpoint: (request) => kernel.hooks.checkpoint.promise(request),
      restore: async (request) => (await kernel.hooks.restoreCheckpoint.promise(request)) === true,
    },
  };
}

/** The parts of a context every plugin shares (they carry no name): made once per kernel. */
export interface KernelAccess {
  services: ServiceDirectory;
  instances: InstanceDirectory;
  lifecycle: Lifecycle;
  tiers: TierDirectory;
  tenantUids: TenantUids;
  tokens: TokenSync;
  proxy: ProxyAccess;
}
