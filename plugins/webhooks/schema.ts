/**
 * The config the webhooks plugin owns (docs/observability.md#alert-webhooks): `settings.alerts`, with the
 * receivers (`webhooks`), the `rules` that raise alerts, the cool-down and how deliveries are retried and bounded.
 * Composed into the settings schema when the plugin is loaded (core/config/compose.ts).
 */
import { z } from 'zod';
import { duration } from '../../core/config/fields.ts';
import { DNS_LABEL } from '../../core/config/names.ts';

/** Names of webhooks and rules: they label metrics and appear in `ten alerts`, so short and plain. */
const NAME = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
const name = (what: string) =>
  z.string().regex(NAME, `expected a ${what} name: lowercase letters, digits, '-', '_' and '.', 1 to 63 characters, starting with a letter or digit`);

const serviceList = z
  .array(z.string().regex(DNS_LABEL, "expected a service name: lowercase letters, digits and '-', 1 to 63 characters"))
  .min(1, 'expected at least one service name (leave the field out for every service)')
  .max(256, 'expected at most 256 service names');

/** http(s) only, absolute; the URL is never shown by the API (a Slack URL is itself a secret). */
const webhookUrl = z.string().transform((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: 'expected an absolute http:// or https:// URL' });
    return z.NEVER;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({ code: 'custom', message: `expected an http:// or https:// URL, got ${url.protocol}` });
    return z.NEVER;
  }
  return url.href;
});

const webhook = z
  .strictObject({
    name: name('webhook'),
    url: webhookUrl,
    /** HMAC-SHA256 key of the `Tenement-Signature` header; required for the generic format. */
    secret: z.string().min(16, 'expected a secret of at least 16 characters').max(1024, 'expected a secret of at most 1024 characters').optional(),
    format: z.enum(['generic', 'slack']).default('generic'),
    /** Only alerts about these services (alerts about no service, like a server-wide metric, go to webhooks without this). */
    services: serviceList.optional(),
  })
  .superRefine((hook, ctx) => {
    if (hook.format === 'generic' && hook.secret === undefined) {
      ctx.addIssue({ code: 'custom', path: ['secret'], message: "expected a secret for format 'generic': receivers verify the Tenement-Signature header with it" });
    }
  });

const positiveDuration = (what: string) => duration.refine((ms) => ms > 0, `expected ${what} above 0, like '30s'`);

/** What every rule has: which services it watches, which webhooks it goes to, its own cool-down. */
const common = {
  /** Defaults to `on` (or the metric's name); rule names must be distinct. */
  name: name('rule').optional(),
  services: serviceList.optional(),
  webhooks: z.array(name('webhook')).min(1, 'expected at least one webhook name (leave the field out for every webhook)').optional(),
  /** After an alert, the same rule and subject stay quiet this long (default: alerts.cooldown). */
  cooldown: duration.optional(),
};

const eventRules = z.discriminatedUnion(
  'on',
  [
    /** The instance gave up restarting (maxRestarts in restartWindow, or restart: never). Clears when it runs again. */
    z.strictObject({ ...common, on: z.literal('failed') }),
    /** The kernel OOM-killed a process of the instance. Clears after a cool-down without another. */
    z.strictObject({ ...common, on: z.literal('oom') }),
    /** A wake (a request for a hibernated or stopped instance) ended in a failed start. Clears when it runs again. */
    z.strictObject({ ...common, on: z.literal('wake-failed') }),
    /** Health checks failed and it has not been healthy since, for `for`. Clears once it is running and healthy. */
    z.strictObject({ ...common, on: z.literal('unhealthy'), for: duration.default(0) }),
    /** Restarted `count` times within `within`. Clears when fewer restarts remain in the window. */
    z.strictObject({
      ...common,
      on: z.literal('restarts'),
      count: z.number().int().min(1, 'expected a count of at least 1').max(10_000),
      within: z.union([z.string(), z.number()], { error: "expected a window like '10m' (restarts counted within it)" }).pipe(positiveDuration('a window')),
    }),
    /** DATA_DIR use at or above `above` of `limits.storage` (default: the service's limits.storageWarn). */
    z.strictObject({
      ...common,
      on: z.literal('storage'),
      above: z.number().gt(0, 'expected a share of the limit above 0, like 0.8').max(1, 'expected a share of the limit up to 1, like 0.8').optional(),
    }),
  ],
  { error: () => "expected a rule with on: 'failed', 'oom', 'wake-failed', 'unhealthy', 'restarts' or 'storage', or a metric rule ({ metric, above | below, for })" },
);

/** A threshold on a metric of the shared registry, per series (label set), evaluated every `alerts.interval`. */
const metricRule = z
  .strictObject({
    ...common,
    metric: z.string().regex(/^[a-zA-Z_:][a-zA-Z0-9_:]{0,199}$/, 'expected a Prometheus metric name like tenement_instance_resident_memory_bytes'),
    above: z.number().finite().optional(),
    below: z.number().finite().optional(),
    /** Breached this long without a break before it fires (default 0: at the first evaluation). */
    for: duration.default(0),
    /** Only series with these label values. */
    labels: z.record(z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'expected a label name'), z.string().max(256)).optional(),
  })
  .superRefine((rule, ctx) => {
    if ((rule.above === undefined) === (rule.below === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['above'], message: 'expected exactly one of above or below' });
    }
  });

type EventRuleInput = z.output<typeof eventRules>;
type MetricRuleInput = z.output<typeof metricRule>;

/** A rule with its name filled in. */
export type EventRule = EventRuleInput & { name: string };
export type MetricRule = MetricRuleInput & { name: string };
export type AlertRule = EventRule | MetricRule;

/** Picks the schema by the rule's shape, so an error names the fields of the rule meant, not of every kind. */
const rule = z.unknown().transform((value, ctx): EventRuleInput | MetricRuleInput => {
  const isMetric = typeof value === 'object' && value !== null && Object.hasOwn(value, 'metric');
  const result = (isMetric ? metricRule : eventRules).safeParse(value);
  if (result.success) return result.data;
  for (const issue of result.error.issues) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  return z.NEVER;
});

const delivery = z.strictObject({
  /** Whole request, connect to last byte read; a slower receiver counts as a failed attempt. */
  timeout: positiveDuration('a timeout').refine((ms) => ms <= 300_000, 'expected a timeout of at most 5m').default(10_000),
  /** Delay before retry n: base·2^n capped at max, with jitter (the upper half of it). */
  backoff: z
    .strictObject({ base: positiveDuration('a base delay').default(5_000), max: positiveDuration('a maximum delay').default(600_000) })
    .refine((b) => b.base <= b.max, 'expected base <= max')
    .default({ base: 5_000, max: 600_000 }),
  /** Attempts before a delivery is recorded as failed. */
  maxAttempts: z.number().int().min(1).max(100).default(12),
  /** A delivery still undelivered this long after its alert is recorded as failed. */
  maxAge: positiveDuration('a maximum age').default(86_400_000),
  /** Rows kept in the outbox, delivered and failed ones included (oldest finished ones go first; when all are pending, new alerts are dropped and counted). */
  maxRows: z.number().int().min(10).max(1_000_000).default(10_000),
});

const DELIVERY_DEFAULTS = { timeout: 10_000, backoff: { base: 5_000, max: 600_000 }, maxAttempts: 12, maxAge: 86_400_000, maxRows: 10_000 };

const alerts = z
  .strictObject({
    webhooks: z.array(webhook).max(32, 'expected at most 32 webhooks').default([]),
    rules: z.array(rule).max(256, 'expected at most 256 rules').default([]),
    /** After an alert, the same rule and subject stay quiet this long; the resolved message is sent whatever it is. */
    cooldown: duration.default(300_000),
    /** How often metric thresholds, durations (`for`) and storage shares are evaluated. */
    interval: duration.refine((ms) => ms >= 50, 'expected an interval of at least 50ms').default(15_000),
    delivery: delivery.default(DELIVERY_DEFAULTS),
  })
  .transform((config, ctx) => {
    const webhooks = new Set<string>();
    config.webhooks.forEach((hook, index) => {
      if (webhooks.has(hook.name)) ctx.addIssue({ code: 'custom', path: ['webhooks', index, 'name'], message: `two webhooks are named '${hook.name}': give them distinct names` });
      webhooks.add(hook.name);
    });
    const names = new Set<string>();
    const rules = config.rules.map((raw, index): AlertRule => {
      const ruleName = raw.name ?? ('metric' in raw ? raw.metric : raw.on);
      if (names.has(ruleName)) ctx.addIssue({ code: 'custom', path: ['rules', index, 'name'], message: `two rules are named '${ruleName}': give them distinct names with name` });
      names.add(ruleName);
      for (const target of raw.webhooks ?? []) {
        if (!webhooks.has(target)) {
          ctx.addIssue({ code: 'custom', path: ['rules', index, 'webhooks'], message: `unknown webhook '${target}': expected one of ${[...webhooks].join(', ') || 'none defined'}` });
        }
      }
      return { ...raw, name: ruleName } as AlertRule;
    });
    return { ...config, rules };
  });

export type AlertsConfig = z.output<typeof alerts>;
export type WebhookConfig = AlertsConfig['webhooks'][number];
export type DeliveryConfig = AlertsConfig['delivery'];

export const webhooksSettingsFields = {
  /** Alert rules and the webhooks they are delivered to (docs/observability.md#alert-webhooks); none by default. */
  alerts: alerts.optional(),
};
