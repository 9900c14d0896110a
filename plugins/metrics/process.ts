import { Counter, collectDefaultMetrics, type Registry } from 'prom-client';
import type { PluginContext } from '../../core/plugin-context.ts';

/**
 * prom-client's defaults that are gauges named `..._total` (promtool rejects a non-counter with that suffix);
 * each duplicates the family without the suffix (nodejs_active_handles and so on), so nothing is lost.
 */
const NON_CONFORMING_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

/** The Tenement process itself: prom-client's standard process_* and nodejs_* metrics, under their usual names. */
export function trackProcess(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of NON_CONFORMING_DEFAULTS) registry.removeSingleMetric(name);
}

/** Calls, errors and time per hook and plugin, from the kernel's hook instrumentation. */
export function trackHooks(timings: PluginContext['timings'], registry: Registry): void {
  const labelsOf = (key: string): { hook: string; plugin: string } => {
    const slash = key.indexOf('/');
    return { hook: key.slice(0, slash), plugin: key.slice(slash + 1) };
  };
  const family = (name: string, help: string, pick: (t: { calls: number; errors: number; totalMs: number }) => number): void => {
    new Counter({
      name,
      help,
      labelNames: ['hook', 'plugin'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [key, timing] of timings.byTap) this.inc(labelsOf(key), pick(timing));
      },
    });
  };
  family('tenement_hook_calls_total', 'Calls of each plugin tap, by hook.', (t) => t.calls);
  family('tenement_hook_errors_total', 'Calls of each plugin tap that threw or rejected, by hook.', (t) => t.errors);
  family('tenement_hook_duration_seconds_total', 'Time spent in each plugin tap, by hook.', (t) => t.totalMs / 1000);
}

/** Unexpected errors the server contained instead of ending (ctx.faults), by where they happened. */
export function trackFaults(faults: PluginContext['faults'], registry: Registry): void {
  new Counter({
    name: 'tenement_internal_errors_total',
    help: 'Unexpected errors contained instead of ending the server: a plugin tap that threw (where="hook:<name>"), an unhandled rejection or an uncaught exception.',
    labelNames: ['where'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [where, count] of faults.counts()) this.inc({ where }, count);
    },
  });
}
