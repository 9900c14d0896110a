/** The config field the tenant-metrics plugin owns (docs/observability.md): a service's `metrics`. */
import { z } from 'zod';
import { duration, size } from '../../core/config/fields.ts';

/** Hard ceilings whatever the config says: they bound what one instance can make Tenement hold. */
export const MAX_SERIES_CEILING = 50_000;
export const MAX_BYTES_CEILING = 32 * 1024 * 1024;

const tenantMetrics = z
  .strictObject({
    /** The path each running instance serves its metrics on, in the Prometheus text format. */
    path: z
      .string()
      .max(1024)
      .regex(/^\/[\x21-\x7e]*$/, "expected an absolute path like '/metrics' (printable ASCII, no spaces)"),
    /** How often each running instance is scraped. */
    interval: duration.pipe(z.number().min(100, 'expected an interval of at least 100ms')).default(15_000),
    /** A scrape that has not finished by then fails as `timeout` (the instance's series go stale). */
    timeout: duration.pipe(z.number().min(10, 'expected a timeout of at least 10ms')).default(5_000),
    /** Series kept per instance; the rest of a scrape is dropped and counted. */
    maxSeries: z.number().int().min(1).max(MAX_SERIES_CEILING).default(1_000),
    /** Largest body read; a bigger one fails the scrape as `too_large`. */
    maxBytes: size.pipe(z.number().min(1024).max(MAX_BYTES_CEILING, 'expected at most 32MiB')).default(4 * 1024 * 1024),
  })
  .optional();

export const tenantMetricsServiceFields = {
  /** Scrape the instances' own Prometheus metrics and re-expose them on Tenement's /metrics (docs/observability.md). */
  metrics: tenantMetrics,
};

export type TenantMetricsConfig = NonNullable<z.output<typeof tenantMetrics>>;
