import { z } from 'zod';
import { parsePluginOptions } from '../../core/plugin-options.ts';
import { definePlugin } from '../../sdk/index.ts';
import { tenantExposition } from './exposition.ts';
import { trackHealthFailures } from './health-failures.ts';
import { trackInstances } from './instances.ts';
import { trackFaults, trackHooks, trackProcess } from './process.ts';
import { MetricsState } from './series.ts';
import { trackTraffic } from './traffic.ts';

const optionsSchema = z
  .strictObject({
    /** Serve GET /metrics without a token (the default). Off: scrape /api/metrics with an admin token instead. */
    public: z.boolean().default(true),
    /** Include prom-client's process_* and nodejs_* metrics of the Tenement process. */
    processMetrics: z.boolean().default(true),
  })
  .default({ public: true, processMetrics: true });

export type MetricsOptions = z.input<typeof optionsSchema>;

/**
 * Prometheus metrics: proxied requests, wakes, instance states, restarts, health check failures and each
 * instance's CPU and memory, on the server's prom-client registry. GET /metrics serves them to Prometheus;
 * GET /api/metrics serves the same to any token, scoped to a tenant's own instances for tenant tokens.
 */
export default definePlugin<MetricsOptions | undefined>({
  name: 'metrics',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    const options = parsePluginOptions(ctx.name, optionsSchema, ctx.config);
    const registry = ctx.metrics;
    const state = new MetricsState(ctx.instances, ctx.services);

    trackTraffic(ctx.hooks, state, registry);
    trackInstances(ctx.instances, state, registry);
    trackHealthFailures(state, registry);
    trackHooks(ctx.timings, registry);
    trackFaults(ctx.faults, registry);
    if (options.processMetrics) trackProcess(registry);

    if (options.public) {
      ctx.api.route({
        method: 'GET',
        url: '/metrics',
        summary: 'Every metric in the Prometheus text format, for scrapers (no token)',
        tags: ['metrics'],
        access: 'public',
        handler: async ({ reply }) => {
          void reply.type(registry.contentType);
          return registry.metrics();
        },
      });
    }
    ctx.api.route({
      method: 'GET',
      url: '/api/metrics',
      summary: "Metrics in the Prometheus text format; a tenant token sees only its own instances' series",
      tags: ['metrics'],
      access: 'token',
      handler: async ({ identity, reply }) => {
        void reply.type(registry.contentType);
        return identity!.kind === 'admin' ? registry.metrics() : tenantExposition(registry, identity!.tenant);
      },
    });
  },
});
