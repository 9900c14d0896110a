/**
 * The config fields the otel plugin owns (docs/observability.md): `settings.otel`. Tracing is off unless this
 * is set or the standard OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT variable is. Zod fields and nothing else: core
 * reads this file to compose the config schema (core/config/first-party.ts).
 */
import { z } from 'zod';
import { duration } from '../../core/config/fields.ts';

/** The OTEL_TRACES_SAMPLER names (the OpenTelemetry SDK environment specification). */
export const SAMPLER_NAMES = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

/** The OTLP/HTTP encodings (OTEL_EXPORTER_OTLP_PROTOCOL's values; `grpc` is not offered). */
export const PROTOCOLS = ['http/protobuf', 'http/json'] as const;

const ratio = z.number().min(0, 'expected a sampling ratio from 0 to 1').max(1, 'expected a sampling ratio from 0 to 1');

const httpUrl = z
  .string()
  .url('expected the collector URL, like http://127.0.0.1:4318')
  .refine((value) => /^https?:\/\//i.test(value), 'expected an http:// or https:// URL');

const otelSettings = z.strictObject({
  /** The collector's OTLP/HTTP base URL (as OTEL_EXPORTER_OTLP_ENDPOINT): traces go to `{endpoint}/v1/traces`. */
  endpoint: httpUrl.optional(),
  /** How spans are encoded: `http/protobuf` (the default, as the OpenTelemetry specification's) or `http/json`. */
  protocol: z.enum(PROTOCOLS).optional(),
  /** Headers sent with every export (authentication); never given to instances. */
  headers: z.record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected an HTTP header name'), z.string()).optional(),
  /** A ratio (parent-based: a sampled caller's trace is kept) or an OTEL_TRACES_SAMPLER name, or `{ name, ratio }`. */
  sampler: z
    .union([ratio, z.enum(SAMPLER_NAMES), z.strictObject({ name: z.enum(SAMPLER_NAMES), ratio: ratio.optional() })])
    .optional(),
  /** `service.name` of Tenement's own spans (default OTEL_SERVICE_NAME, else `tenement`). */
  serviceName: z.string().min(1).max(255).optional(),
  /** How long a shutdown waits for the last export (default 5s; a hanging collector holds it this long). */
  shutdownTimeout: duration.optional(),
});

export type OtelSettings = z.output<typeof otelSettings>;

export const otelSettingsFields = {
  /** Tracing over OTLP/HTTP (docs/observability.md); absent: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set. */
  otel: otelSettings.optional(),
};
