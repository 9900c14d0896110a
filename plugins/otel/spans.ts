/**
 * The spans Tenement makes (docs/observability.md#tracing), from the kernel's hooks:
 *
 *   GET (SERVER: the proxied request, from its head being read (routing included) to its end)
 *   ├── tenement.wake (INTERNAL: the wait for a hibernated or restarting instance)
 *   │     └── tenement.spawn (INTERNAL: beforeSpawn to ready; readiness polls counted on it)
 *   └── GET (CLIENT: to the instance; its context is the `traceparent` the instance gets)
 *         └── (the tenant's own spans)
 *   tenement.wasm.invoke (INTERNAL) replaces the CLIENT span for an in-process (wasm tier) instance.
 *   tenement.restart (root: a crash or failed health to the next ready; its spawn is a child)
 *   tenement.health (root: each health check outside a start)
 *
 * Per-request state is kept on the request's ProxyExchange (its `tracing` field); per-instance state in maps keyed
 * by the instance, emptied when the start, wake or restart ends, or the instance goes.
 */
import { ROOT_CONTEXT, SamplingDecision, SpanKind, SpanStatusCode, TraceFlags, trace, type Attributes, type Context, type Span, type HrTime, type SpanContext, type Tracer } from '@opentelemetry/api';
import type { Sampler } from '@opentelemetry/sdk-trace-base';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_SERVER_ADDRESS,
  ATTR_URL_PATH,
  ATTR_URL_QUERY,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { HealthCheckReport, InstanceEvent, InstanceView, ProxiedRequest, ProxyExchange, RunningHandle, SpawnSpec, UpstreamRequest, WakeRequest } from '../../core/types.ts';
import { drawn, newSpanId, newTraceId } from './ids.ts';
import { at, NO_ATTRIBUTES, SpanRecord, STATUS_CODE, type RecordSink } from './records.ts';
import { SharedAttributeCache } from './shared-attributes.ts';
import { dropTraceHeaders, injectTraceContext } from './trace-headers.ts';

export const ATTR_SERVICE = 'tenement.service' as const;
export const ATTR_INSTANCE = 'tenement.instance' as const;
const ATTR_TIER = 'tenement.tier';

export interface Propagation {
  /** The caller's context from `traceparent`/`tracestate` (ROOT_CONTEXT when absent or malformed: a new trace). */
  extract(exchange: ProxyExchange): Context;
}

/** A request's tracing state, kept on its exchange (ProxyExchange.tracing) from its first hook to its end. */
class RequestTrace {
  /** The caller's context with this span in it: made only for a wake (SDK spans under it). */
  context: Context | null = null;
  wake: Span | null = null;
  /** exchange.wakeMs when the current wake began, and when (performance.now()). */
  wakeMsBefore = 0;
  wakeStartedAt = 0;
  wakeInstance: string | null = null;
  upstream: SpanRecord | null = null;

  constructor(
    /** The SERVER span, recorded without the SDK (records.ts); null when the sampler leaves it out. */
    readonly span: SpanRecord | null,
    readonly spanContext: SpanContext,
    /** The caller's context. */
    readonly parent: Context,
    /** The instance named on the request span. */
    readonly instanceKey: string,
  ) {}
}

/** The exchange's tracing state, if this plugin set it (anything else there is not ours). */
function traceOf(exchange: ProxyExchange): RequestTrace | null {
  const state = exchange.tracing;
  return state instanceof RequestTrace ? state : null;
}

interface StartTrace {
  span: Span;
  readinessChecks: number;
}

/** The attribute names spans.ts and shared-attributes.ts write out in object literals are the semantic conventions' (checked by tsc). */
export const WRITTEN_OUT: [
  typeof ATTR_HTTP_REQUEST_METHOD,
  typeof ATTR_URL_PATH,
  typeof ATTR_URL_SCHEME,
  typeof ATTR_SERVER_ADDRESS,
  typeof ATTR_CLIENT_ADDRESS,
  typeof ATTR_SERVICE,
  typeof ATTR_INSTANCE,
] = ['http.request.method', 'url.path', 'url.scheme', 'server.address', 'client.address', 'tenement.service', 'tenement.instance'];

/** Request records keep their status code apart (records.ts); its name there is the semantic conventions' (checked by tsc). */
export const STATUS_CODE_NAME: typeof ATTR_HTTP_RESPONSE_STATUS_CODE = STATUS_CODE;

const now = (): HrTime => at(performance.now());

function instanceAttributes(instance: Pick<InstanceView, 'service' | 'id'>): Attributes {
  return { [ATTR_SERVICE]: instance.service, [ATTR_INSTANCE]: instance.id };
}

/** Longest attribute value or status message a span gets (what a client sends can be a whole request head). */
const MAX_VALUE = 1024;

const bounded = (value: string): string => (value.length > MAX_VALUE ? value.slice(0, MAX_VALUE) : value);

function fail(span: Span, message: string): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message: bounded(message) });
}

export class Spans {
  /** Instance key -> the context of the first request waiting for it to wake (its spawn span's parent). */
  private readonly waking = new Map<string, Context>();
  private readonly starts = new Map<string, StartTrace>();
  private readonly restarts = new Map<string, Span>();
  private readonly shared = new SharedAttributeCache();

  constructor(
    private readonly tracer: Tracer,
    private readonly propagation: Propagation,
    private readonly sampler: Sampler,
    private readonly sink: RecordSink,
    /**
     * The sampler samples every trace Tenement starts (always_on, parentbased_always_on): a request without a
     * caller's context is not put to it (its answer, an object per request, is known).
     */
    private readonly rootsSampled = false,
  ) {}

  private record(record: SpanRecord | null, end: number): void {
    if (record === null) return;
    record.end = end;
    this.sink.onEnd(record);
  }

  /** The context the wake span is made under (the SERVER span's), made the first time a request waits. */
  private requestContext(entry: RequestTrace): Context {
    entry.context ??= trace.setSpanContext(entry.parent, entry.spanContext);
    return entry.context;
  }

  /** The request's span, made when the first hook about it (wake or upstreamHeaders) names its instance. */
  private requestTrace(exchange: ProxyExchange, instance: InstanceView): RequestTrace {
    let entry = traceOf(exchange);
    if (entry !== null) return entry;
    const target = exchange.target;
    const query = target.indexOf('?');
    // The semantic conventions' required and most useful recommended attributes. What a client chose is cut to
    // MAX_VALUE here (cheaper than a span limit, which the SDK checks on every attribute of every span).
    // Method, scheme, host and instance are the same for many requests: made once (shared-attributes.ts).
    // Names written out, not computed (`[ATTR_URL_PATH]:`): a literal with computed names is built property by
    // property at run time, one with written names from a template (WRITTEN_OUT checks they are the same).
    const shared = this.shared.server(instance, exchange.method, exchange.hostname);
    const attributes: Attributes = {
      'url.path': bounded(query === -1 ? target : target.slice(0, query)),
      'client.address': exchange.remoteAddress,
    };
    if (query !== -1) attributes[ATTR_URL_QUERY] = bounded(target.slice(query + 1));
    const agent = exchange.header('user-agent');
    if (agent !== undefined) attributes[ATTR_USER_AGENT_ORIGINAL] = bounded(agent);
    const parent = this.propagation.extract(exchange);
    // As the SDK's tracer does: a valid caller's context gives the trace id and state, then the sampler decides.
    const caller = parent === ROOT_CONTEXT ? undefined : trace.getSpanContext(parent);
    const valid = caller !== undefined && trace.isSpanContextValid(caller);
    const traceId = valid ? caller.traceId : newTraceId();
    const traceBlock = valid ? -1 : drawn.block;
    const traceAt = drawn.at;
    let sampled = true;
    let traceState = valid ? caller.traceState : undefined;
    if (!this.rootsSampled || parent !== ROOT_CONTEXT) {
      // The samplers Tenement offers (options.ts) read no attributes: they are given the span's own, not all.
      const sampling = this.sampler.shouldSample(parent, traceId, exchange.method, SpanKind.SERVER, attributes, []);
      sampled = sampling.decision === SamplingDecision.RECORD_AND_SAMPLED;
      if (sampling.attributes) Object.assign(attributes, sampling.attributes);
      if (sampling.traceState !== undefined) traceState = sampling.traceState;
    }
    const spanId = newSpanId();
    const spanBlock = drawn.block;
    const spanAt = drawn.at;
    const spanContext: SpanContext = {
      traceId,
      spanId,
      traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE,
      traceState,
    };
    // Recorded but not sampled is never exported: no record either.
    const span = sampled ? new SpanRecord(this.sink, exchange.method, SpanKind.SERVER, spanContext, valid ? caller : undefined, exchange.receivedAt, attributes, shared) : null;
    if (span !== null) {
      // Where the ids' bytes lie (ids.ts), for the protobuf writer to copy instead of decoding the hex.
      span.traceBlock = traceBlock;
      span.traceAt = traceAt;
      span.spanBlock = spanBlock;
      span.spanAt = spanAt;
    }
    entry = new RequestTrace(span, spanContext, parent, instance.key);
    exchange.tracing = entry;
    return entry;
  }

  /** `wake` hook, before the plugin that wakes: the request waits from here. */
  wake(request: WakeRequest): void {
    const exchange = request.exchange;
    // An upgrade is a connection, never reported on the request hook: its span would never end.
    if (!exchange || exchange.upgrade) return;
    const instance = request.instance;
    const entry = this.requestTrace(exchange, instance);
    if (entry.wake) this.endWake(entry, exchange, 'another candidate was tried');
    const startedAt = performance.now();
    entry.wake = this.tracer.startSpan(
      'tenement.wake',
      { kind: SpanKind.INTERNAL, startTime: at(startedAt), attributes: { ...instanceAttributes(instance), 'tenement.instance.state': instance.state } },
      this.requestContext(entry),
    );
    entry.wakeMsBefore = exchange.wakeMs;
    entry.wakeStartedAt = startedAt;
    entry.wakeInstance = instance.key;
    if (!this.waking.has(instance.key)) this.waking.set(instance.key, trace.setSpan(this.requestContext(entry), entry.wake));
  }

  private endWake(entry: RequestTrace, exchange: ProxyExchange, error: string | null): void {
    const span = entry.wake!;
    if (error !== null) fail(span, error);
    // The kernel's own measure of the wait (it started a few microseconds before this tap ran), never past now.
    span.end(at(Math.min(performance.now(), entry.wakeStartedAt + Math.max(0, exchange.wakeMs - entry.wakeMsBefore))));
    if (entry.wakeInstance !== null && trace.getSpan(this.waking.get(entry.wakeInstance) ?? ROOT_CONTEXT) === span) this.waking.delete(entry.wakeInstance);
    entry.wake = null;
    entry.wakeInstance = null;
  }

  /** `upstreamHeaders` hook: the request goes to `instance` now; the instance gets this span's traceparent. */
  upstream(request: UpstreamRequest): void {
    const { exchange, instance, headers } = request;
    const entry = this.requestTrace(exchange, instance);
    // No wake, no candidate before: it starts where it was routed (the kernel's reading; a clock read is ~0.1 us).
    const routedStraight = entry.wake === null && entry.upstream === null && exchange.wakeMs === 0 && exchange.startedAt > 0;
    if (entry.wake) this.endWake(entry, exchange, null);
    if (entry.upstream) {
      entry.upstream.fail('no answer: sent to the next candidate');
      this.record(entry.upstream, performance.now());
    }
    const parentContext = entry.spanContext;
    // Every sampler Tenement offers decides a child as its parent was decided (same trace id, or parent-based).
    const context: SpanContext = { traceId: parentContext.traceId, spanId: newSpanId(), traceFlags: parentContext.traceFlags, traceState: parentContext.traceState };
    // The instance's names, the method and its address (or tier): shared by its requests (shared-attributes.ts).
    const inProcess = Boolean(instance.handle?.inProcess);
    const server = entry.span;
    if (server !== null) {
      const client = new SpanRecord(this.sink, inProcess ? 'tenement.wasm.invoke' : exchange.method, inProcess ? SpanKind.INTERNAL : SpanKind.CLIENT, context, parentContext, routedStraight ? exchange.startedAt : performance.now(), NO_ATTRIBUTES, this.shared.client(instance, exchange.method));
      client.traceBlock = server.traceBlock;
      client.traceAt = server.traceAt;
      client.spanBlock = drawn.block;
      client.spanAt = drawn.at;
      client.parentBlock = server.spanBlock;
      client.parentAt = server.spanAt;
      entry.upstream = client;
    } else entry.upstream = null;
    dropTraceHeaders(headers);
    injectTraceContext(context, headers);
  }

  /** `request` hook: the request ended (answered, failed or abandoned), at the kernel's reading (durationMs counts from startedAt). */
  request(done: ProxiedRequest): void {
    const exchange = done.exchange;
    const entry = traceOf(exchange);
    if (entry === null) return;
    exchange.tracing = undefined;
    const status = done.status;
    if (entry.wake) this.endWake(entry, exchange, status === 0 ? 'the client went away' : `answered ${status} before the instance was up`);
    const span = entry.span;
    if (span === null) return;
    if (status > 0) span.statusCode = status;
    // Another candidate than the first one named served it.
    if (done.instance.key !== entry.instanceKey) {
      span.set(ATTR_SERVICE, done.instance.service);
      span.set(ATTR_INSTANCE, done.instance.id);
    }
    if (status === 0 || status >= 500) {
      span.set(ATTR_ERROR_TYPE, status === 0 ? 'aborted' : String(status));
      span.fail(status === 0 ? 'no response' : `status ${status}`);
    }
    const ended = exchange.startedAt > 0 && done.durationMs >= 0 ? exchange.startedAt + done.durationMs : performance.now();
    const upstream = entry.upstream;
    if (upstream) {
      if (status > 0) upstream.statusCode = status;
      if (status === 0 || status >= 400) upstream.set(ATTR_ERROR_TYPE, status === 0 ? 'aborted' : String(status));
      if (status === 0 || status >= 500) upstream.fail(status === 0 ? 'no response' : `status ${status}`);
      this.record(upstream, ended);
    }
    this.record(span, ended);
  }

  /** `beforeSpawn`: the start of an instance, under the request waiting for it or the restart that caused it. */
  spawnStarting(spec: SpawnSpec): void {
    const key = `${spec.service}:${spec.id}`;
    this.endStart(key, 'started again before it was ready');
    const restart = this.restarts.get(key);
    const parent = this.waking.get(key) ?? (restart ? trace.setSpan(ROOT_CONTEXT, restart) : ROOT_CONTEXT);
    const span = this.tracer.startSpan(
      'tenement.spawn',
      { kind: SpanKind.INTERNAL, startTime: now(), attributes: { ...instanceAttributes(spec), [ATTR_TIER]: spec.tier } },
      parent,
    );
    this.starts.set(key, { span, readinessChecks: 0 });
  }

  /** `afterSpawn`: the runtime answered; readiness polling follows. */
  spawned(handle: Readonly<RunningHandle>, spec: SpawnSpec): void {
    const start = this.starts.get(`${spec.service}:${spec.id}`);
    if (!start) return;
    if (handle.pid !== null) start.span.setAttribute('process.pid', handle.pid);
    start.span.addEvent('tenement.spawned', now());
  }

  private endStart(key: string, error: string | null): void {
    const start = this.starts.get(key);
    if (!start) return;
    this.starts.delete(key);
    start.span.setAttribute('tenement.readiness.checks', start.readinessChecks);
    if (error !== null) fail(start.span, error);
    start.span.end(now());
  }

  /** `healthChecked`: a readiness poll is counted on the start's span; any other check is a span of its own. */
  health(instance: InstanceView, report: HealthCheckReport): void {
    const start = this.starts.get(instance.key);
    if (start) {
      start.readinessChecks += 1;
      return;
    }
    const attributes: Attributes = { ...instanceAttributes(instance), 'tenement.health.kind': report.kind, 'tenement.health.ok': report.result.ok };
    if (report.path !== null) attributes[ATTR_URL_PATH] = report.path;
    const span = this.tracer.startSpan('tenement.health', { kind: SpanKind.INTERNAL, startTime: at(report.startedAt), attributes }, ROOT_CONTEXT);
    if (!report.result.ok) fail(span, report.result.detail ?? 'unhealthy');
    span.end(at(report.startedAt + report.durationMs));
  }

  /** Lifecycle events: a start ends at ready, a restart begins at `restarting` and ends at the next ready. */
  event(event: InstanceEvent): void {
    const key = event.instance;
    switch (event.type) {
      case 'ready':
      case 'woken':
        this.endStart(key, null);
        this.endRestart(key, null);
        this.waking.delete(key);
        return;
      case 'restarting': {
        this.endStart(key, event.reason ?? 'restarting');
        const open = this.restarts.get(key);
        if (open) {
          open.addEvent('tenement.restarting', event.reason === undefined ? {} : { 'tenement.reason': bounded(event.reason) }, now());
          return;
        }
        const attributes: Attributes = { [ATTR_SERVICE]: event.service, [ATTR_INSTANCE]: event.id, 'tenement.from': event.from };
        if (event.reason !== undefined) attributes['tenement.reason'] = bounded(event.reason);
        this.restarts.set(key, this.tracer.startSpan('tenement.restart', { kind: SpanKind.INTERNAL, startTime: now(), attributes }, ROOT_CONTEXT));
        return;
      }
      case 'failed':
      case 'stopped':
      case 'stopping':
      case 'hibernated':
      case 'removed':
        if (event.type === 'removed') this.shared.forget(key);
        this.endStart(key, event.reason ?? `${event.type} before it was ready`);
        this.endRestart(key, event.type === 'failed' ? (event.reason ?? 'failed') : null);
        this.waking.delete(key);
        return;
      default:
        return;
    }
  }

  private endRestart(key: string, error: string | null): void {
    const span = this.restarts.get(key);
    if (!span) return;
    this.restarts.delete(key);
    if (error !== null) fail(span, error);
    span.end(now());
  }

  /** At shutdown: what is still open is ended, so it is exported with the rest. */
  endAll(): void {
    for (const key of [...this.starts.keys()]) this.endStart(key, 'server stopping');
    for (const key of [...this.restarts.keys()]) this.endRestart(key, 'server stopping');
    this.waking.clear();
  }
}
