import {
  AsyncParallelHook,
  AsyncSeriesBailHook,
  AsyncSeriesWaterfallHook,
  HookMap,
  SyncHook,
  type Tap,
} from 'tapable';
import type { Registry } from 'prom-client';
import { isTenementError, pluginError } from './errors.ts';
import { dropUnwritablePairs } from './dataplane/tapped-headers.ts';
import type {
  AuthRequest,
  HealthCheckReport,
  HealthProbe,
  HealthResult,
  EdgeTraffic,
  Identity,
  InstanceView,
  InstanceEvent,
  LogLine,
  ProxiedRequest,
  RequestInfo,
  RouteTarget,
  RunningHandle,
  SpawnSpec,
  TierProbe,
  UpstreamRequest,
  WakeRequest,
} from './types.ts';

/**
 * The kernel's extension points. The tapable class of each hook is its contract:
 * a *BailHook* means the first tap that answers wins, a *WaterfallHook* passes each tap's result to the next,
 * a *ParallelHook* runs every tap at once and waits for all. A bail hook's tap returns undefined to pass.
 */
export interface KernelHooks {
  /** Keyed by tier: the tier's runtime starts the instance and returns its handle. */
  spawn: HookMap<AsyncSeriesBailHook<[SpawnSpec], RunningHandle | undefined>>;
  /** Keyed by tier: whether the host can run the tier now (a runtime without a probe is trusted). */
  probe: HookMap<AsyncSeriesBailHook<[], TierProbe | undefined>>;
  /** Adjust env, limits and mounts before a runtime sees the spec. */
  beforeSpawn: AsyncSeriesWaterfallHook<[SpawnSpec]>;
  /**
   * Wrap the handle a runtime returned (each tap returns the handle to use: the same, or one that delegates to
   * it), e.g. stats from a cgroup, or a stop that also empties it. The spec is the one the runtime got.
   */
  afterSpawn: AsyncSeriesWaterfallHook<[RunningHandle, SpawnSpec]>;
  /** First plugin that returns a target wins. */
  route: AsyncSeriesBailHook<[RequestInfo], RouteTarget | undefined>;
  /** Identity for the management API (and optional edge auth). */
  auth: AsyncSeriesBailHook<[AuthRequest], Identity | undefined>;
  /** Keyed by check kind ('http', 'tcp', ...). */
  health: HookMap<AsyncSeriesBailHook<[InstanceView, HealthProbe], HealthResult | undefined>>;
  /** Bring a stopped, hibernated or restarting instance to `running`; resolves true once it is ready. */
  wake: AsyncSeriesBailHook<[WakeRequest], true | undefined>;
  /** Plugins register collectors on the shared prom-client registry. */
  metrics: SyncHook<[Registry]>;
  /**
   * Every lifecycle event (transitions and notices), after the state changed. Observers: the taps are called in
   * order and nothing waits for them; an async tap runs on its own, its failure contained like a throw.
   */
  stateChange: SyncHook<[InstanceEvent]>;
  /** Every captured output line of every instance. */
  log: SyncHook<[InstanceView, LogLine]>;
  /** Every proxied request once it has ended (answered, failed or abandoned). */
  request: SyncHook<[ProxiedRequest]>;
  /**
   * Requests an external edge (HAProxy) carried straight to an instance, from its counters, per instance and
   * read (a few times a second): the share of the traffic the `request` hook never sees under that edge.
   */
  edgeTraffic: SyncHook<[EdgeTraffic]>;
  /**
   * The head about to go to an instance, once per instance a request is sent to (both proxy paths and the
   * in-process one): taps may add, change or remove headers in place (tracing's `traceparent`). Called only
   * when tapped, so the hot path pays nothing otherwise; a failing tap is contained and the head goes as it is.
   */
  upstreamHeaders: SyncHook<[UpstreamRequest]>;
  /** Every health check the kernel ran (readiness polls, the monitor, the API), once it answered. Only when tapped. */
  healthChecked: SyncHook<[InstanceView, HealthCheckReport]>;
  /**
   * Plugins add what they know of an instance (OOM kills, storage use...) to what the API shows of it: each tap
   * sets its own keys on `facts` (through ctx.hooks a plugin writes into an object of its own, merged after it; a
   * key two plugins set is refused and recorded, core/describe-facts.ts). Runs for every instance view, so taps
   * should read cached figures, not scan.
   */
  describe: AsyncParallelHook<[InstanceView, InstanceFacts]>;
  /**
   * Live migration's source side (`ten move`, docs/fleet.md): a plugin that can save the instance's running process
   * answers a Checkpointer, or a sentence saying why it cannot (the move then stops, copies and starts it cold).
   */
  checkpoint: AsyncSeriesBailHook<[CheckpointRequest], Checkpointer | string | undefined>;
  /** Live migration's target side: images received for an instance; a plugin that restores them at its next spawn answers true. */
  restoreCheckpoint: AsyncSeriesBailHook<[RestoreCheckpointRequest], true | undefined>;
}

/** Plugin-provided fields of an instance view, keyed by what they describe (`oomKills`, `storage`...). */
export type InstanceFacts = Record<string, unknown>;

export interface CheckpointRequest {
  instance: InstanceView;
  /** An empty folder of Tenement's (root, 0700) for the images. */
  dir: string;
}

export type CheckpointOutcome = { ok: true; bytes: number; dumpMs: number } | { ok: false; reason: string };

export interface Checkpointer {
  /** Copies the memory while the instance runs (CRIU pre-dump): the final dump then writes only what changed since. */
  preDump(): Promise<void>;
  /** The instance's next stop saves it into `dir` instead of ending it; resolves once that stop tried. */
  arm(): Promise<CheckpointOutcome>;
  /** Gives the checkpoint up (the move failed before the stop). */
  cancel(): void;
}

export interface RestoreCheckpointRequest {
  service: string;
  id: string;
  /** The images as the source's checkpoint left them; the tap takes (moves) them. */
  dir: string;
}

export interface HookTiming {
  calls: number;
  errors: number;
  totalMs: number;
  maxMs: number;
}

export type HookTimingListener = (hook: string, plugin: string, ms: number, error: unknown) => void;
export type HookFaultListener = (hook: string, plugin: string, error: unknown) => void;

/**
 * Hooks whose callers only observe (nothing waits for an answer): a tap that throws or rejects there is
 * contained where it happened, so a broken plugin can neither take the server down (a `log` tap runs inside an
 * instance's output stream) nor keep the other plugins' taps from running.
 */
const OBSERVER_HOOKS: ReadonlySet<string> = new Set(['log', 'request', 'edgeTraffic', 'stateChange', 'describe', 'upstreamHeaders', 'healthChecked']);
/** Hooks where an uncoded error is a plugin's bug worth counting; elsewhere (spawn, health) failing is an answer. */
const FAULT_HOOKS: ReadonlySet<string> = new Set([...OBSERVER_HOOKS, 'route', 'auth', 'metrics']);

/** Per `hook/plugin` call counts and durations, filled by the interceptors; metrics and tracing read them. */
export class HookTimings {
  readonly byTap = new Map<string, HookTiming>();
  private readonly listeners: HookTimingListener[] = [];
  private readonly faultListeners: HookFaultListener[] = [];

  onTiming(listener: HookTimingListener): void {
    this.listeners.push(listener);
  }

  /** Called for each uncoded error of a tap in a hook where failing is a bug (FAULT_HOOKS). */
  onFault(listener: HookFaultListener): void {
    this.faultListeners.push(listener);
  }

  fault(hook: string, plugin: string, error: unknown): void {
    if (isTenementError(error) || !FAULT_HOOKS.has(hook)) return;
    for (const listener of this.faultListeners) listener(hook, plugin, error);
  }

  /** The counters of one tap, made once when it registers so a call costs no lookup. */
  slot(hook: string, plugin: string): HookTiming {
    const key = `${hook}/${plugin}`;
    let timing = this.byTap.get(key);
    if (!timing) {
      timing = { calls: 0, errors: 0, totalMs: 0, maxMs: 0 };
      this.byTap.set(key, timing);
    }
    return timing;
  }

  record(timing: HookTiming, hook: string, plugin: string, ms: number, error: unknown): void {
    timing.calls += 1;
    timing.totalMs += ms;
    if (ms > timing.maxMs) timing.maxMs = ms;
    if (error !== undefined) timing.errors += 1;
    for (const listener of this.listeners) listener(hook, plugin, ms, error);
  }
}

type AnyFn = (...args: unknown[]) => unknown;

/**
 * Wraps every tap's function so each call is timed and its errors name the plugin and the hook. In observer
 * hooks a failing tap is recorded and reported (timings.fault) and the call goes on as if it had returned.
 */
function instrumentTap(tap: Tap & { fn: AnyFn; type: string }, hook: string, timings: HookTimings): Tap {
  const fn = hook === 'upstreamHeaders' ? checkedHeaderTap(tap.fn) : tap.fn;
  const plugin = tap.name;
  const slot = timings.slot(hook, plugin);
  const contain = OBSERVER_HOOKS.has(hook);
  /** Records a failure; returns what to throw, or undefined when it is contained. */
  const failed = (started: number, error: unknown): unknown => {
    timings.record(slot, hook, plugin, performance.now() - started, error);
    timings.fault(hook, plugin, error);
    return contain ? undefined : pluginError(error, plugin, hook);
  };
  if (tap.type === 'promise') {
    tap.fn = async (...args: unknown[]) => {
      const started = performance.now();
      try {
        const result = await fn(...args);
        timings.record(slot, hook, plugin, performance.now() - started, undefined);
        return result;
      } catch (error) {
        const thrown = failed(started, error);
        if (thrown !== undefined) throw thrown;
        return undefined;
      }
    };
  } else if (tap.type === 'async') {
    tap.fn = (...args: unknown[]) => {
      const started = performance.now();
      const callback = args.pop() as (error?: unknown, result?: unknown) => void;
      let answered = false;
      const done = (error?: unknown, result?: unknown): void => {
        if (answered) return;
        answered = true;
        const failure = error === null ? undefined : error;
        if (failure === undefined) {
          timings.record(slot, hook, plugin, performance.now() - started, undefined);
          return callback(error, result);
        }
        const thrown = failed(started, failure);
        callback(thrown, thrown === undefined ? undefined : result);
      };
      try {
        fn(...args, done);
      } catch (error) {
        done(error);
      }
    };
  } else {
    tap.fn = (...args: unknown[]) => {
      const started = performance.now();
      try {
        const result = fn(...args);
        // An `async` function tapped with tap() in a hook that ignores results: its rejection would be
        // unhandled (and end the process), so it is recorded like a throw.
        if (contain && result instanceof Promise) {
          result.then(
            () => timings.record(slot, hook, plugin, performance.now() - started, undefined),
            (error: unknown) => failed(started, error),
          );
          return undefined;
        }
        timings.record(slot, hook, plugin, performance.now() - started, undefined);
        return result;
      } catch (error) {
        const thrown = failed(started, error);
        if (thrown !== undefined) throw thrown;
        return undefined;
      }
    };
  }
  return tap;
}

/**
 * An `upstreamHeaders` tap whose pairs are checked before the kernel writes them into a head (tapped-headers.ts):
 * a pair that cannot be one header line is dropped and the tap fails as a contained fault naming its plugin.
 */
function checkedHeaderTap(fn: AnyFn): AnyFn {
  return (...args: unknown[]) => {
    const result = fn(...args);
    const problem = dropUnwritablePairs((args[0] as UpstreamRequest).headers);
    if (problem !== null) throw new Error(`a header the tap set was not sent: ${problem}`);
    return result;
  };
}

interface Interceptable {
  intercept(interceptor: { register?: (tap: never) => Tap }): void;
}

function instrument<H>(hook: H, name: string, timings: HookTimings): H {
  (hook as unknown as Interceptable).intercept({
    register: (tap: never) => instrumentTap(tap as Tap & { fn: AnyFn; type: string }, name, timings),
  });
  return hook;
}

export function createHooks(timings: HookTimings): KernelHooks {
  return {
    spawn: new HookMap((tier) => instrument(new AsyncSeriesBailHook<[SpawnSpec], RunningHandle | undefined>(['spec']), `spawn:${tier}`, timings)),
    probe: new HookMap((tier) => instrument(new AsyncSeriesBailHook<[], TierProbe | undefined>([]), `probe:${tier}`, timings)),
    beforeSpawn: instrument(new AsyncSeriesWaterfallHook<[SpawnSpec]>(['spec']), 'beforeSpawn', timings),
    afterSpawn: instrument(new AsyncSeriesWaterfallHook<[RunningHandle, SpawnSpec]>(['handle', 'spec']), 'afterSpawn', timings),
    route: instrument(new AsyncSeriesBailHook<[RequestInfo], RouteTarget | undefined>(['request']), 'route', timings),
    auth: instrument(new AsyncSeriesBailHook<[AuthRequest], Identity | undefined>(['request']), 'auth', timings),
    health: new HookMap((kind) => instrument(new AsyncSeriesBailHook<[InstanceView, HealthProbe], HealthResult | undefined>(['instance', 'probe']), `health:${kind}`, timings)),
    wake: instrument(new AsyncSeriesBailHook<[WakeRequest], true | undefined>(['request']), 'wake', timings),
    metrics: instrument(new SyncHook<[Registry]>(['registry']), 'metrics', timings),
    stateChange: instrument(new SyncHook<[InstanceEvent]>(['event']), 'stateChange', timings),
    log: instrument(new SyncHook<[InstanceView, LogLine]>(['instance', 'line']), 'log', timings),
    request: instrument(new SyncHook<[ProxiedRequest]>(['request']), 'request', timings),
    edgeTraffic: instrument(new SyncHook<[EdgeTraffic]>(['traffic']), 'edgeTraffic', timings),
    upstreamHeaders: instrument(new SyncHook<[UpstreamRequest]>(['request']), 'upstreamHeaders', timings),
    healthChecked: instrument(new SyncHook<[InstanceView, HealthCheckReport]>(['instance', 'report']), 'healthChecked', timings),
    describe: instrument(new AsyncParallelHook<[InstanceView, InstanceFacts]>(['instance', 'facts']), 'describe', timings),
    checkpoint: instrument(new AsyncSeriesBailHook<[CheckpointRequest], Checkpointer | string | undefined>(['request']), 'checkpoint', timings),
    restoreCheckpoint: instrument(new AsyncSeriesBailHook<[RestoreCheckpointRequest], true | undefined>(['request']), 'restoreCheckpoint', timings),
  };
}
