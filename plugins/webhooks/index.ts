import { definePlugin } from '../../sdk/index.ts';
import { Delivery } from './delivery.ts';
import { EventRules } from './event-rules.ts';
import { formatAlert } from './format.ts';
import { Incidents, type Alert } from './incidents.ts';
import { MetricRules } from './metric-rules.ts';
import { registerMetrics } from './metrics.ts';
import { OWNER, Outbox } from './outbox.ts';
import { registerRoutes } from './routes.ts';
import { webhooksSettingsFields, type AlertRule, type AlertsConfig, type EventRule, type MetricRule, type WebhookConfig } from './schema.ts';

/** Without `settings.alerts`: no webhooks, no rules, the defaults for the rest (the outbox still answers the API). */
const NO_ALERTS: AlertsConfig = webhooksSettingsFields.alerts.unwrap().parse({});

/** Whether an alert goes to this webhook: the rule's `webhooks` and the webhook's `services` both allow it. */
function wants(webhook: WebhookConfig, rule: AlertRule, alert: Alert): boolean {
  if (rule.webhooks !== undefined && !rule.webhooks.includes(webhook.name)) return false;
  if (webhook.services === undefined) return true;
  return alert.service !== null && webhook.services.includes(alert.service);
}

/**
 * Alert webhooks (docs/observability.md#alert-webhooks): rules on lifecycle events and metric thresholds raise
 * one alert per incident (and a resolved one when it clears), written to a durable outbox in the state
 * database and POSTed to each webhook, signed (HMAC-SHA256, `Tenement-Signature`), retried with backoff.
 * `GET /api/alerts` and `ten alerts` show the deliveries. Without `settings.alerts` it raises nothing.
 */
export default definePlugin({
  name: OWNER,
  version: '1.0.0',
  kernel: '^1',
  settingsFields: webhooksSettingsFields,
  setup(ctx) {
    const config = ctx.settings.alerts ?? NO_ALERTS;
    const outbox = new Outbox(ctx.store, config.delivery.maxRows);
    let open = true;
    const metrics = registerMetrics(ctx.metrics, outbox, () => open);
    registerRoutes(ctx.api, outbox);

    const webhooks = new Map(config.webhooks.map((hook) => [hook.name, hook]));
    const delivery = new Delivery(outbox, webhooks, config.delivery, (outcome) => metrics.delivery(outcome), ctx.log);

    const incidents = new Incidents((alert, rule) => {
      metrics.alert(alert.rule, alert.kind);
      ctx.log.info({ alert: alert.id, rule: alert.rule, kind: alert.kind, instance: alert.instance }, `alert ${alert.kind}: ${alert.summary}`);
      let added = false;
      for (const webhook of webhooks.values()) {
        if (!wants(webhook, rule, alert)) continue;
        const row = {
          alert: alert.id,
          webhook: webhook.name,
          kind: alert.kind,
          rule: alert.rule,
          service: alert.service,
          instance: alert.instance,
          summary: alert.summary,
          body: formatAlert(alert, webhook.format),
        };
        if (outbox.add(row)) added = true;
        else {
          metrics.delivery('dropped');
          ctx.log.warn({ webhook: webhook.name, alert: alert.id }, `alert outbox full (${config.delivery.maxRows} pending rows): alert dropped`);
        }
      }
      if (added) delivery.kick();
    }, config.cooldown);

    const eventRules = new EventRules(
      config.rules.filter((rule): rule is EventRule => 'on' in rule),
      incidents,
      ctx.instances,
      config.cooldown,
    );
    const metricRules = new MetricRules(
      config.rules.filter((rule): rule is MetricRule => 'metric' in rule),
      incidents,
      ctx.metrics,
      (message) => ctx.log.warn(message),
    );
    if (config.rules.length > 0) ctx.hooks.stateChange.tap((event) => eventRules.onEvent(event));

    // Durations, windows, storage shares and metrics are read on a tick; one tick at a time.
    let ticking = false;
    const tick = async (): Promise<void> => {
      if (ticking) return;
      ticking = true;
      try {
        const now = Date.now();
        await eventRules.tick(now);
        await metricRules.tick(now);
        incidents.release(Date.now());
      } catch (error) {
        ctx.faults.record('webhooks:tick', error);
      } finally {
        ticking = false;
      }
    };
    const timer = config.rules.length > 0 ? setInterval(() => void tick(), config.interval) : null;
    timer?.unref();

    delivery.start();
    ctx.onClose(async () => {
      if (timer) clearInterval(timer);
      await delivery.close();
      open = false;
    });
  },
});
