import { requireAccess } from '../../core/api/identity.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { z } from 'zod';
import { DNS_LABEL } from '../../core/config/schema.ts';
import { PREFIX } from './families.ts';
import type { MetricType } from './parse.ts';
import type { Scraper } from './scraper.ts';

const label = (what: string) => z.string().regex(DNS_LABEL, `expected a DNS label for ${what}`);
const params = z.strictObject({ service: label('the service'), id: label('the instance id') });

/** A value JSON can carry: NaN and the infinities as the strings the text format uses. */
export type JsonValue = number | 'NaN' | '+Inf' | '-Inf';

export interface ApiSample {
  /** As re-exposed on /metrics: `tenant_` + the tenant's own sample name. */
  name: string;
  /** The tenant's labels (its `service`/`instance` renamed `exported_*`); `service` and `instance` are above. */
  labels: Record<string, string>;
  value: JsonValue;
  type: MetricType;
  help: string | null;
  scrapedAt: string;
}

/** What `GET /api/instances/:service/:id/metrics` answers (the CLI's `ten metrics` reads it). */
export interface InstanceMetricsAnswer {
  service: string;
  instance: string;
  state: string;
  configured: boolean;
  up: boolean | null;
  scrapedAt: string | null;
  lastError: string | null;
  series: number;
  dropped: Record<string, number> | null;
  failures: Record<string, number> | null;
  samples: ApiSample[];
}

function jsonValue(value: number): JsonValue {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return value;
}

/** `GET /api/instances/:service/:id/metrics`: the instance's latest samples, a tenant token its own only. */
export function metricsRoute(ctx: PluginContext, scraper: Scraper): void {
  ctx.api.route({
    method: 'GET',
    url: '/api/instances/:service/:id/metrics',
    summary: "The instance's own metrics from its last scrape (services with `metrics`), as JSON",
    description:
      'Samples of the last successful scrape of a running instance (empty while it is not running, or after a failed ' +
      'scrape: lastError says why). A tenant token sees its own instance only; another id answers 404 as a missing one.',
    tags: ['metrics'],
    access: 'token',
    params,
    handler: ({ identity, params: { service, id } }): InstanceMetricsAnswer => {
      requireAccess(identity, service, id);
      const instance = ctx.instances.get(service, id);
      if (!instance) throw new TenementError(ErrorCodes.UNKNOWN_INSTANCE, `unknown instance '${service}:${id}'`);
      const config = scraper.config(service);
      const record = scraper.records.get(instance.key);
      const scrapedAt = record?.scrapedAt != null ? new Date(record.scrapedAt).toISOString() : null;
      const samples: ApiSample[] = [];
      for (const family of record?.families ?? []) {
        for (const sample of family.samples) {
          samples.push({
            name: PREFIX + sample.name,
            labels: Object.fromEntries(sample.labels),
            value: jsonValue(sample.value),
            type: family.type,
            help: family.help,
            scrapedAt: scrapedAt!,
          });
        }
      }
      return {
        service,
        instance: instance.key,
        state: instance.state,
        configured: config !== undefined,
        up: record?.up ?? null,
        scrapedAt,
        lastError: record?.lastError ?? null,
        series: samples.length,
        dropped: record ? { ...record.dropped } : null,
        failures: record ? { ...record.failures } : null,
        samples,
      };
    },
  });
}
