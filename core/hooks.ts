import {
  AsyncParallelHook,
  AsyncSeriesBailHook,
  AsyncSeriesWaterfallHook,
  HookMap,
  SyncHook,
  type Tap,
} from 'tapable';
import type { Registry } from 'prom-client';
import { ErrorCodes, TenementError, errorMessage, isTenementError } from './errors.ts';
import type {
  AuthRequest,
  HealthProbe,
  HealthResult,
  Identity,
  Instance,
  InstanceEvent,
  LogLine,
  ProxiedRequest,
  RequestInfo,
  RouteTarget,
  RunningHandle,
  SpawnSpec,
  TierProbe,
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
  /** First plugin that returns a target wins. */
  route: AsyncSeriesBailHook<[RequestInfo], RouteTarget | undefined>;
  /** Identity for the management API (and optional edge auth). */
  auth: AsyncSeriesBailHook<[AuthRequest], Identity | undefined>;
  /** Keyed by check kind ('http', 'tcp', ...). */
  health: HookMap<AsyncSeriesBailHook<[Instance, HealthProbe], HealthResult | undefined>>;
  /** Bring a stopped, hibernated or restarting instance to `running`; resolves true once it is ready. */
  wake: AsyncSeriesBailHook<[WakeRequest], true | undefined>;
  /** Plugins register collectors on the shared prom-client registry. */
  metrics: SyncHook<[Registry]>;
  /** Every lifecycle transition. */
  stateChange: AsyncParallelHook<[InstanceEvent]>;
  /** Every captured output line of every instance. */
  log: SyncHook<[Instance, LogLine]>;
  /** Every proxied request once it has ended (answered, failed or abandoned). */
  request: SyncHook<[ProxiedRequest]>;
  /**
   * Plugins add what they know of an instance (OOM kills, storage use...) to what the API shows of it: each tap
   * sets its own keys on `facts`. Runs for every instance view, so taps should read cached figures, not scan.
   */
  describe: AsyncParallelHook<[Instance, InstanceFacts]>;
}

/** Plugin-provided fields of an instance view, keyed by what they describe (`oomKills`, `storage`...). */
export type InstanceFacts = Record<string, unknown>;

export interface HookTiming {
  calls: number;
  errors: number;
  totalMs: number;
  maxMs: number;
}

export type HookTimingListener = (hook: string, plugin: string, ms: number, error: unknown) => void;

/** Per `hook/plugin` call counts and durations, filled by the interceptors; metrics and tracing read them. */
export class HookTimings {
  readonly byTap = new Map<string, HookTiming>();
  private readonly listeners: HookTimingListener[] = [];

  onTiming(listener: HookTimingListener): void {
    this.listeners.push(listener);
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

function wrapError(error: unknown, hook: string, plugin: string): unknown {
  if (isTenementError(error)) return error;
  return new TenementError(ErrorCodes.HOOK_FAILED, `plugin '${plugin}' failed in hook '${hook}': ${errorMessage(error)}`, {
    plugin,
    hook,
    cause: error,
  });
}

type AnyFn = (...args: unknown[]) => unknown;

/** Wraps every tap's function so each call is timed and its errors name the plugin and the hook. */
function instrumentTap(tap: Tap & { fn: AnyFn; type: string }, hook: string, timings: HookTimings): Tap {
  const fn = tap.fn;
  const plugin = tap.name;
  const slot = timings.slot(hook, plugin);
  if (tap.type === 'promise') {
    tap.fn = async (...args: unknown[]) => {
      const started = performance.now();
      try {
        const result = await fn(...args);
        timings.record(slot, hook, plugin, performance.now() - started, undefined);
        return result;
      } catch (error) {
        timings.record(slot, hook, plugin, performance.now() - started, error);
        throw wrapError(error, hook, plugin);
      }
    };
  } else if (tap.type === 'async') {
    tap.fn = (...args: unknown[]) => {
      const started = performance.now();
      const callback = args.pop() as (error?: unknown, result?: unknown) => void;
      fn(...args, (error?: unknown, result?: unknown) => {
        const failed = error === null ? undefined : error;
        timings.record(slot, hook, plugin, performance.now() - started, failed);
        callback(failed === undefined ? error : wrapError(failed, hook, plugin), result);
      });
    };
  } else {
    tap.fn = (...args: unknown[]) => {
      const started = performance.now();
      try {
        const result = fn(...args);
        timings.record(slot, hook, plugin, performance.now() - started, undefined);
        return result;
      } catch (error) {
        timings.record(slot, hook, plugin, performance.now() - started, error);
        throw wrapError(error, hook, plugin);
      }
    };
  }
  return tap;
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
    route: instrument(new AsyncSeriesBailHook<[RequestInfo], RouteTarget | undefined>(['request']), 'route', timings),
    auth: instrument(new AsyncSeriesBailHook<[AuthRequest], Identity | undefined>(['request']), 'auth', timings),
    health: new HookMap((kind) => instrument(new AsyncSeriesBailHook<[Instance, HealthProbe], HealthResult | undefined>(['instance', 'probe']), `health:${kind}`, timings)),
    wake: instrument(new AsyncSeriesBailHook<[WakeRequest], true | undefined>(['request']), 'wake', timings),
    metrics: instrument(new SyncHook<[Registry]>(['registry']), 'metrics', timings),
    stateChange: instrument(new AsyncParallelHook<[InstanceEvent]>(['event']), 'stateChange', timings),
    log: instrument(new SyncHook<[Instance, LogLine]>(['instance', 'line']), 'log', timings),
    request: instrument(new SyncHook<[ProxiedRequest]>(['request']), 'request', timings),
    describe: instrument(new AsyncParallelHook<[Instance, InstanceFacts]>(['instance', 'facts']), 'describe', timings),
  };
}
