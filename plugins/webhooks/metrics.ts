/** The plugin's collectors on the shared registry: deliveries by outcome, the outbox depth, alerts raised. */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Outcome } from './delivery.ts';
import type { Outbox } from './outbox.ts';

export interface WebhookMetrics {
  delivery(outcome: Outcome): void;
  alert(rule: string, kind: 'firing' | 'resolved'): void;
}

export function registerMetrics(registry: Registry, outbox: Outbox, isOpen: () => boolean): WebhookMetrics {
  const deliveries = new Counter({
    name: 'tenement_alert_deliveries_total',
    help: 'Webhook delivery outcomes: delivered, retried (an attempt failed, another is scheduled), failed (given up), dropped (outbox full).',
    labelNames: ['outcome'],
    registers: [registry],
  });
  for (const outcome of ['delivered', 'retried', 'failed', 'dropped'] as const) deliveries.inc({ outcome }, 0);
  new Gauge({
    name: 'tenement_alert_outbox_depth',
    help: 'Webhook deliveries waiting in the outbox (pending: not yet delivered nor given up).',
    registers: [registry],
    collect() {
      // The store closes after the plugins: a scrape racing the shutdown reads nothing.
      if (isOpen()) this.set(outbox.pendingCount());
    },
  });
  const alerts = new Counter({
    name: 'tenement_alerts_total',
    help: 'Alerts raised by the rules, by rule and kind (firing, resolved); each is one outbox row per webhook it goes to.',
    labelNames: ['rule', 'kind'],
    registers: [registry],
  });
  return {
    delivery: (outcome) => deliveries.inc({ outcome }),
    alert: (rule, kind) => alerts.inc({ rule, kind }),
  };
}
