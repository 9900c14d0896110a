import { Counter } from 'prom-client';
import { errorMessage } from '../../core/errors.ts';
import { KERNEL_VERSION } from '../../core/version.ts';
import { definePlugin } from '../../sdk/index.ts';
import { instanceEnv, resolveTracing } from './options.ts';
import { otelSettingsFields } from './schema.ts';
import { TRACE_CONTEXT_HEADERS } from './trace-headers.ts';

export { resolveTracing, instanceEnv } from './options.ts';

/** The SDK side, loaded only when tracing is on. A function of its own: tsc leaves an import() in setup unrewritten for dist/. */
const loadTracing = () => import('./tracing.ts');

/** The W3C trace-context headers the instance gets from Tenement (spans.ts drops a client's and adds its own). */

/**
 * OpenTelemetry tracing (docs/observability.md#tracing): spans for proxied requests (route, wake, upstream),
 * spawns, restarts, health checks and wasm invocations, exported over OTLP/HTTP; W3C `traceparent` propagated
 * to instances, which also get OTEL_* variables so their own spans join the trace.
 *
 * Off unless `settings.otel` or OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT is set (OTEL_SDK_DISABLED=true wins): then
 * setup returns having tapped nothing, and the OpenTelemetry SDK is never loaded (it is imported dynamically,
 * only when tracing is on).
 */
export default definePlugin({
  name: 'otel',
  version: '1.0.0',
  kernel: '^1',
  settingsFields: otelSettingsFields,
  async setup(ctx) {
    const options = resolveTracing(ctx.settings.otel);
    if (options === null) return;
    const { startTracing } = await loadTracing();
    const tracing = startTracing(options, KERNEL_VERSION, (error) => ctx.log.warn({ err: errorMessage(error) }, 'trace export failed at shutdown'));
    const spans = tracing.spans;

    // First among the wake taps, answering nothing: the wait is timed from here, then hibernate wakes.
    ctx.hooks.wake.tap((request) => {
      spans.wake(request);
      return undefined;
    }, { stage: -1_000 });
    // It only adds traceparent and tracestate, replacing the client's: a head without them goes upstream as it came.
    ctx.hooks.upstreamHeaders.tap((request) => spans.upstream(request), { adds: TRACE_CONTEXT_HEADERS });
    ctx.hooks.request.tap((done) => spans.request(done));
    ctx.hooks.beforeSpawn.tap((spec) => {
      spans.spawnStarting(spec);
      return { ...spec, env: instanceEnv(options, spec.service, spec.id, spec.env) };
    }, { stage: -1_000 });
    ctx.hooks.afterSpawn.tap((handle, spec) => {
      spans.spawned(handle, spec);
      return handle;
    }, { stage: 1_000 });
    ctx.hooks.healthChecked.tap((instance, report) => spans.health(instance, report));
    ctx.hooks.stateChange.tap((event) => spans.event(event));

    const counters = tracing.counters;
    ctx.hooks.metrics.tap((registry) => {
      new Counter({
        name: 'tenement_otel_spans_exported_total',
        help: 'Spans the OTLP collector accepted',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(counters.exported);
        },
      });
      new Counter({
        name: 'tenement_otel_spans_failed_total',
        help: 'Spans whose export failed (collector unreachable, slow or refusing)',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(counters.failed);
        },
      });
      new Counter({
        name: 'tenement_otel_spans_dropped_total',
        help: 'Spans dropped before export because the export queue was full (the collector is slower than the traffic, or down)',
        registers: [registry],
        collect() {
          this.reset();
          this.inc(counters.dropped);
        },
      });
    });
    ctx.log.info({ endpoint: options.tracesUrl, sampler: options.sampler, ratio: options.ratio }, 'tracing on');
    ctx.onClose(() => tracing.shutdown());
  },
});
