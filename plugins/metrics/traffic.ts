import { Counter, type Registry } from 'prom-client';
import type { PluginHooks } from '../../core/plugin-context.ts';
import { SnapshotHistogram } from './histogram.ts';
import { CODE_CLASSES, REQUEST_BUCKETS, WAKE_BUCKETS, type MetricsState } from './series.ts';

/** Lifecycle events that end a wake without the instance coming back. */
const WAKE_ABANDONED = new Set(['failed', 'stopped', 'hibernated', 'removed']);

/**
 * Request counts and durations from the `request` hook, and wake durations from the lifecycle. The request
 * listener runs on the proxy's hot path once per request, so it only does array arithmetic; prom-client sees
 * the numbers when it is scraped.
 */
export function trackTraffic(hooks: PluginHooks, state: MetricsState, registry: Registry): void {
  hooks.request.tap((request) => {
    const series = state.of(request.instance);
    if (!series) return;
    const status = request.status;
    series.requests[status >= 100 && status < 1000 ? (status / 100) | 0 : 0]! += 1;
    series.service.requestDuration.observe(request.durationMs / 1000);
    if (request.wakeMs > 0) series.service.wakeQueueWait.observe(request.wakeMs / 1000);
  });
  // What an external edge (HAProxy) carried straight to instances, from its counters (docs/edge.md): counted in the
  // same series; each request's duration is the edge's mean over its recent requests.
  hooks.edgeTraffic.tap((traffic) => {
    const series = state.of(traffic.instance);
    if (!series) return;
    traffic.byClass.forEach((count, index) => {
      if (index < series.requests.length && count > 0) series.requests[index]! += count;
    });
    if (traffic.meanMs !== null) series.service.requestDuration.observe(traffic.meanMs / 1000, traffic.requests);
  });

  // From the `waking` transition to the `woken` event of the same instance: the whole wake as the lifecycle saw
  // it (restarts on the way included), once per wake however many requests were waiting for it.
  const wakingSince = new Map<string, number>();
  hooks.stateChange.tap((event) => {
    if (event.type === 'waking') {
      wakingSince.set(event.instance, performance.now());
    } else if (event.type === 'woken') {
      const since = wakingSince.get(event.instance);
      wakingSince.delete(event.instance);
      if (since !== undefined) state.service(event.service).wakeDuration.observe((performance.now() - since) / 1000);
    } else if (WAKE_ABANDONED.has(event.type)) {
      wakingSince.delete(event.instance);
    }
  });

  new Counter({
    name: 'tenement_requests_total',
    help: 'Proxied requests by instance and status class (aborted: the exchange ended before a status was sent).',
    labelNames: ['service', 'instance', 'code_class'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [, series] of state.instances()) {
        series.requests.forEach((count, index) => {
          if (count > 0) this.inc({ ...series.labels, code_class: CODE_CLASSES[index]! }, count);
        });
      }
    },
  });

  const byService = (pick: 'requestDuration' | 'wakeDuration' | 'wakeQueueWait') => () =>
    [...state.services()].map((s) => ({ labels: s.labels, data: s[pick] }));
  new SnapshotHistogram(
    {
      name: 'tenement_request_duration_seconds',
      help: 'Time from the start of a proxied request until its response ended, wake-up waits included.',
      labelNames: ['service'],
      buckets: REQUEST_BUCKETS,
      registry,
    },
    byService('requestDuration'),
  );
  new SnapshotHistogram(
    {
      name: 'tenement_wake_duration_seconds',
      help: 'Time from an instance starting to wake (out of hibernation or stopped) until it was ready.',
      labelNames: ['service'],
      buckets: WAKE_BUCKETS,
      registry,
    },
    byService('wakeDuration'),
  );
  new SnapshotHistogram(
    {
      name: 'tenement_wake_queue_wait_seconds',
      help: 'Time proxied requests waited for their instance to wake or restart (requests that did not wait are not counted).',
      labelNames: ['service'],
      buckets: WAKE_BUCKETS,
      registry,
    },
    byService('wakeQueueWait'),
  );
}
