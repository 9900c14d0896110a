import { Counter, Gauge } from 'prom-client';
import { z } from 'zod';
import { DNS_LABEL } from '../../core/config/schema.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { definePlugin } from '../../sdk/index.ts';
import { Autoscaler, SAMPLE_MS } from './controller.ts';
import { autoscaleServiceFields, autoscaleSettingsFields, type AutoscaleSettings } from './schema.ts';

function registerMetrics(ctx: PluginContext, scaler: Autoscaler): void {
  new Gauge({
    name: 'tenement_autoscale_desired_replicas',
    help: "The replica count the autoscaler last decided for the service (its `scale` window's average over its target, clamped).",
    labelNames: ['service'],
    registers: [ctx.metrics],
    collect() {
      this.reset();
      for (const [service, state] of scaler.services) if (state.last) this.set({ service }, state.last.desired);
    },
  });
  new Counter({
    name: 'tenement_autoscale_events_total',
    help: 'Scale events (the replica count changed), by service and direction (up, down).',
    labelNames: ['service', 'direction'],
    registers: [ctx.metrics],
    collect() {
      this.reset();
      for (const { service, direction, count } of scaler.eventCounts.values()) this.inc({ service, direction }, count);
    },
  });
}

const params = z.strictObject({ service: z.string().regex(DNS_LABEL, 'expected a DNS label for the service') });

function scaleRoute(ctx: PluginContext, scaler: Autoscaler): void {
  ctx.api.route({
    method: 'GET',
    url: '/api/services/:service/scale',
    summary: "The autoscaler's view of a service: its pool, the last decision and the recent scale events",
    description:
      'For a service with `scale`: replicas ready and on their way, the stable and panic windows\' values, the count ' +
      'decided and what bounded it (host ceiling, scale-down delay, panic), the autoscaler\'s replicas and its last ' +
      '100 scale events, each with the metric, the window\'s value and the new count.',
    tags: ['autoscale'],
    access: 'admin',
    params,
    handler: ({ params: { service } }) => {
      if (!ctx.services.get(service)) throw new TenementError(ErrorCodes.UNKNOWN_SERVICE, `unknown service '${service}'`);
      const view = scaler.view(service);
      if (!view) throw new TenementError(ErrorCodes.BAD_REQUEST, `service '${service}' has no scale config (docs/autoscale.md)`);
      return view;
    },
  });
}

/**
 * Autoscaling (docs/autoscale.md): a service with `scale` gets replicas (`r-<n>` instances of it) between min and
 * max, following its in-flight requests or request rate in the spirit of Knative's KPA, bounded per host by
 * `settings.autoscale`. Each scale event is logged, kept for GET /api/services/:service/scale, counted in
 * /metrics, and `ten ps` marks the replicas.
 */
export default definePlugin({
  name: 'autoscale',
  version: '1.0.0',
  kernel: '^1',
  serviceFields: autoscaleServiceFields,
  settingsFields: autoscaleSettingsFields,
  setup(ctx) {
    const ceiling = (ctx.settings as { autoscale?: AutoscaleSettings }).autoscale ?? { maxReplicas: 32 };
    const scaler = new Autoscaler(ctx, ceiling);
    ctx.hooks.request.tap((request) => scaler.onRequest(request.instance));
    ctx.hooks.edgeTraffic.tap((traffic) => scaler.onRequest(traffic.instance, traffic.requests));
    ctx.hooks.describe.tap((instance, facts) => {
      const replica = scaler.replicaOf(instance);
      if (replica) facts.autoscale = { replica: true, phase: replica.phase };
    });
    registerMetrics(ctx, scaler);
    scaleRoute(ctx, scaler);
    const timer = setInterval(() => {
      try {
        scaler.tick();
      } catch (error) {
        ctx.faults.record('autoscale', error);
      }
    }, SAMPLE_MS);
    timer.unref();
    ctx.onClose(async () => {
      clearInterval(timer);
      await scaler.close();
    });
  },
});
