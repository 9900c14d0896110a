import { Counter, Gauge, type Registry } from 'prom-client';
import type { Scraper } from './scraper.ts';

/**
 * Tenement's own account of the tenant scrapes, per instance (`instance="service:id"`, so a tenant token's
 * /api/metrics shows its own): whether the last scrape worked, how many series it left, what was dropped and
 * why scrapes failed. Computed from the scraper's records when Tenement's /metrics is read.
 */
export function registerOwnMetrics(registry: Registry, scraper: Scraper): void {
  new Gauge({
    name: 'tenement_tenant_metrics_up',
    help: "1 when the instance's last metrics scrape succeeded, 0 when it failed (its series are then left out).",
    labelNames: ['service', 'instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of scraper.records.values()) if (r.up !== null) this.set({ service: r.service, instance: r.instance }, r.up ? 1 : 0);
    },
  });
  new Gauge({
    name: 'tenement_tenant_metrics_series',
    help: "Series kept from the instance's last successful metrics scrape (at most its service's maxSeries).",
    labelNames: ['service', 'instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of scraper.records.values()) if (r.up !== null) this.set({ service: r.service, instance: r.instance }, r.series);
    },
  });
  new Gauge({
    name: 'tenement_tenant_metrics_scrape_duration_seconds',
    help: "How long the instance's last metrics scrape took, fetch and parse.",
    labelNames: ['service', 'instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of scraper.records.values()) if (r.lastDurationMs !== null) this.set({ service: r.service, instance: r.instance }, r.lastDurationMs / 1000);
    },
  });
  new Counter({
    name: 'tenement_tenant_metrics_dropped_total',
    help: 'Tenant samples left out, by reason: limit (over maxSeries), duplicate, invalid (reserved or clashing labels, labels over the caps), conflict (a name another family holds with another type).',
    labelNames: ['service', 'instance', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of scraper.records.values()) {
        for (const [reason, count] of Object.entries(r.dropped)) this.inc({ service: r.service, instance: r.instance, reason }, count);
      }
    },
  });
  new Counter({
    name: 'tenement_tenant_metrics_scrape_failures_total',
    help: 'Failed tenant metrics scrapes, by reason: timeout, connect, status (not 2xx), too_large, content_type, parse.',
    labelNames: ['service', 'instance', 'reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const r of scraper.records.values()) {
        for (const [reason, count] of Object.entries(r.failures)) this.inc({ service: r.service, instance: r.instance, reason }, count);
      }
    },
  });
}
