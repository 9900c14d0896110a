import { Counter, type Registry } from 'prom-client';
import type { MetricsState } from './series.ts';

/**
 * Counts the failed checks the health monitor counts, and only those: each failed periodic check of a running
 * instance goes through `lifecycle.markCheckFailed`, which raises the instance's never-reset
 * `failedHealthChecks`. Readiness probes and on-demand checks through the API never count, exactly as the
 * monitor does not count them. An instance removed and created again starts from zero (a counter reset).
 */
export function trackHealthFailures(state: MetricsState, registry: Registry): void {
  new Counter({
    name: 'tenement_health_check_failures_total',
    help: 'Failed periodic health checks of running instances, as the health monitor counts them towards a restart.',
    labelNames: ['service', 'instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [instance, series] of state.instances()) this.inc(series.labels, instance.failedHealthChecks);
    },
  });
}
