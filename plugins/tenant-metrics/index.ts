import { definePlugin } from '../../sdk/index.ts';
import { SharedFamilies } from './families.ts';
import { registerOwnMetrics } from './own-metrics.ts';
import { metricsRoute } from './routes.ts';
import { tenantMetricsServiceFields } from './schema.ts';
import { Scraper } from './scraper.ts';

/**
 * Tenant metrics (docs/observability.md): a service with `metrics: { path }` has each running instance scraped
 * on its own interval, over the instance's own listener (never through the proxy, so never woken), parsed
 * strictly and within bounds, and re-exposed on Tenement's /metrics as `tenant_<name>{service, instance, ...}`,
 * capped per instance. GET /api/instances/:service/:id/metrics answers an instance's samples as JSON.
 */
export default definePlugin({
  name: 'tenant-metrics',
  version: '1.0.0',
  kernel: '^1',
  serviceFields: tenantMetricsServiceFields,
  setup(ctx) {
    const scraper = new Scraper(ctx.instances, ctx.services, new SharedFamilies(ctx.metrics), ctx.log);
    registerOwnMetrics(ctx.metrics, scraper);
    metricsRoute(ctx, scraper);
    const unwatch = ctx.instances.watch((event) => scraper.onEvent(event));
    scraper.start();
    ctx.onClose(async () => {
      unwatch();
      await scraper.close();
    });
  },
});
