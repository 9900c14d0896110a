import { Counter, Histogram, type Registry } from 'prom-client';
import { errorMessage } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import type { ComponentArtifact } from '../../core/wasm/component/index.ts';
import type { WasmCallOptions, WasmCallOutcome, WasmFailureKind, WasmLogLine } from '../../core/wasm/index.ts';
import type { PluginHook, WasmPluginConfig } from './options.ts';

/** What the plugin needs of the pool (core/wasm's WasmPool). */
export interface PluginPool {
  readonly threads: number;
  callComponent(artifact: ComponentArtifact, options: WasmCallOptions): Promise<WasmCallOutcome>;
}

/** The world's exports as jco names them in JavaScript. */
const EXPORT_NAMES: Record<PluginHook, string> = { auth: 'auth', route: 'route', 'on-event': 'onEvent' };

/** A failure of the pool call, or 'invalid' for an answer the host refused. */
export type FailureOutcome = WasmFailureKind | 'invalid';
export type CallResult = { ok: true; value: unknown } | { ok: false; outcome: WasmFailureKind };

const RECENT_LOG_LINES = 50;
/** Generous: instantiating a component can take far longer than a plugin's deadline on a loaded host. */
const WARM_UP_DEADLINE_MS = 10_000;
/** What `auth` gets to instantiate without deciding anything: a request with no method (the build's entry answers it). */
const WARM_UP_REQUEST = { method: '', host: '', path: '', headers: [], remoteAddress: '' };
/** One warning per plugin and hook per this long; the ones in between are counted, not logged. */
const WARN_EVERY_MS = 10_000;

/** Metrics shared by every plugin; registered on the server's registry through the `metrics` hook. */
export class PluginMetrics {
  readonly calls = new Counter({
    name: 'tenement_wasm_plugin_calls_total',
    help: 'Calls of sandboxed plugins by hook and outcome (allow, deny, routed, no-answer, ok, invalid, trap, timeout, ...)',
    labelNames: ['plugin', 'hook', 'outcome'] as const,
    registers: [],
  });
  readonly duration = new Histogram({
    name: 'tenement_wasm_plugin_call_duration_seconds',
    help: 'Wall time of one sandboxed plugin call, pool queue and deadline included',
    labelNames: ['plugin', 'hook'] as const,
    buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [],
  });

  register(registry: Registry): void {
    registry.registerMetric(this.calls);
    registry.registerMetric(this.duration);
  }
}

/** One configured plugin: calls it in the pool under its deadline, counts every outcome, forwards its log lines. */
export class PluginRunner {
  /** `hook/outcome` -> calls, for the API's listing. */
  readonly counts = new Map<string, number>();
  readonly recentLogs: string[] = [];
  private readonly warned = new Map<string, { at: number; suppressed: number }>();
  private warming: Promise<void> | null = null;
  /** Set when the server stops: calls cut short by the pool closing are neither counted nor logged. */
  private closed = false;

  constructor(
    readonly config: WasmPluginConfig,
    readonly artifact: ComponentArtifact,
    private readonly pool: PluginPool,
    private readonly metrics: PluginMetrics,
    private readonly log: Logger,
  ) {}

  get name(): string {
    return this.config.name;
  }

  declares(hook: PluginHook): boolean {
    return this.config.hooks.includes(hook);
  }

  async call(hook: PluginHook, args: unknown[]): Promise<CallResult> {
    const started = performance.now();
    let outcome: WasmCallOutcome;
    try {
      outcome = await this.pool.callComponent(this.artifact, {
        exportName: EXPORT_NAMES[hook],
        args,
        deadlineMs: this.config.timeoutMs,
        // Instances are reused between calls of this plugin only, never shared with services or other plugins.
        instanceKey: `plugin:${this.name}`,
        // No capability grants a file system.
        dataDir: null,
      });
    } catch (error) {
      outcome = { ok: false, kind: 'error', message: errorMessage(error), logs: [] };
    }
    this.metrics.duration.observe({ plugin: this.name, hook }, (performance.now() - started) / 1000);
    this.forwardLogs(outcome.logs);
    if (outcome.ok) return { ok: true, value: outcome.value };
    this.failed(hook, outcome.kind, outcome.message);
    if (outcome.kind !== 'overloaded') void this.warmUp();
    return { ok: false, outcome: outcome.kind };
  }

  /**
   * Makes each worker hold a live instance of this plugin. Instantiating (milliseconds, much more on a loaded
   * host) must not eat a call's deadline: a deadline shorter than it would time out, get the worker replaced,
   * and time out again on the cold replacement. So it happens at start, and again after any failure (which
   * costs the instance, or the whole worker), one round at a time.
   */
  close(): void {
    this.closed = true;
  }

  warmUp(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.warming ??= Promise.all(
      Array.from({ length: this.pool.threads }, () =>
        this.pool.callComponent(this.artifact, {
          exportName: 'auth',
          args: [WARM_UP_REQUEST],
          deadlineMs: WARM_UP_DEADLINE_MS,
          instanceKey: `plugin:${this.name}`,
          dataDir: null,
        }),
      ),
    ).then(
      () => {
        this.warming = null;
      },
      () => {
        this.warming = null;
      },
    );
    return this.warming;
  }

  /** Counts an answer (allow, deny, routed, no-answer, ok). */
  count(hook: PluginHook, outcome: string): void {
    this.metrics.calls.inc({ plugin: this.name, hook, outcome });
    const key = `${hook}/${outcome}`;
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1);
  }

  /** Counts and logs a failure: a trap, a timeout, an invalid answer... The caller falls back to "no answer". */
  failed(hook: PluginHook, outcome: FailureOutcome | 'dropped', message: string): void {
    if (this.closed) return;
    this.count(hook, outcome);
    const key = `${hook}/${outcome}`;
    const now = Date.now();
    const last = this.warned.get(key);
    if (last && now - last.at < WARN_EVERY_MS) {
      last.suppressed += 1;
      return;
    }
    this.warned.set(key, { at: now, suppressed: 0 });
    const fallback = hook === 'auth' && this.config.failClosed ? 'answered 503 (failClosed)' : 'treated as no answer';
    this.log.warn(
      { wasmPlugin: this.name, hook, outcome, err: message, ...(last?.suppressed ? { suppressed: last.suppressed } : {}) },
      `wasm plugin '${this.name}' failed in '${hook}' (${outcome}): ${fallback}`,
    );
  }

  /** Guest output reaches the server log only with the `log` capability; without it, it is dropped. */
  private forwardLogs(lines: WasmLogLine[]): void {
    if (!this.config.capabilities.log || lines.length === 0) return;
    for (const { stream, line } of lines) {
      this.log.info({ wasmPlugin: this.name, stream }, line);
      this.recentLogs.push(line);
    }
    if (this.recentLogs.length > RECENT_LOG_LINES) this.recentLogs.splice(0, this.recentLogs.length - RECENT_LOG_LINES);
  }
}
