import { Counter, type Registry } from 'prom-client';
import type { HealthSettings } from '../../core/config/health.ts';
import type { Instance } from '../../core/instance.ts';
import type { Kernel } from '../../core/kernel.ts';
import type { InstanceSeries, MetricsState } from './series.ts';

/** The check kinds the kernel asks for (core/config/health.ts). */
const HEALTH_KINDS: ReadonlyArray<HealthSettings['kind']> = ['http', 'tcp'];

/** Adds the rises of the instance's consecutive-failure count since it was last looked at. */
function sync(instance: Instance, series: InstanceSeries): void {
  const now = instance.consecutiveHealthFailures;
  if (now > series.seenConsecutiveFailures) series.healthFailures += now - series.seenConsecutiveFailures;
  series.seenConsecutiveFailures = now;
}

/**
 * Counts the failed checks the health monitor counts, and only those: every failed periodic check of a running
 * instance raises `instance.consecutiveHealthFailures` by one; a passing check and a fresh start reset it.
 * Rather than a new event, the count is compared with its last seen value whenever the health hook is called
 * for the instance and at every scrape. Nothing is missed: the monitor raises the count after its check, and it
 * is reset only after a later check (a passing periodic check, or a start's readiness probes), whose call is
 * seen first. Readiness probes and on-demand checks through the API never change the count, so they are not
 * counted, exactly as the monitor does not count them.
 */
export function trackHealthFailures(kernel: Kernel, state: MetricsState, registry: Registry): void {
  for (const kind of HEALTH_KINDS) {
    kernel.hooks.health.for(kind).intercept({
      call: (instance) => {
        const series = state.of(instance);
        if (series) sync(instance, series);
      },
    });
  }

  new Counter({
    name: 'tenement_health_check_failures_total',
    help: 'Failed periodic health checks of running instances, as the health monitor counts them towards a restart.',
    labelNames: ['service', 'instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [instance, series] of state.instances()) {
        sync(instance, series);
        this.inc(series.labels, series.healthFailures);
      }
    },
  });
}
