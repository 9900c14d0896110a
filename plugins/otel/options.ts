/**
 * Whether tracing is on and how, from `settings.otel` and the standard OTEL_* environment variables (the
 * config wins where both say something). Pure and free of OpenTelemetry imports: this runs at every start-up,
 * tracing or not, and must cost nothing when it is off.
 */
import type { OtelSettings } from './schema.ts';
import { PROTOCOLS, SAMPLER_NAMES } from './schema.ts';

export type SamplerName = (typeof SAMPLER_NAMES)[number];
export type Protocol = (typeof PROTOCOLS)[number];

export interface TracingOptions {
  /** Where spans are POSTed (OTLP/HTTP JSON), e.g. http://127.0.0.1:4318/v1/traces. */
  tracesUrl: string;
  /** What instances get as OTEL_EXPORTER_OTLP_ENDPOINT (the base URL), or null when only a traces URL was given. */
  baseUrl: string | null;
  headers: Record<string, string>;
  /** The body's encoding: OTLP protobuf (the default) or JSON. */
  protocol: Protocol;
  sampler: SamplerName;
  /** For the ratio samplers. */
  ratio: number;
  serviceName: string;
  /** How long shutdown waits for the last export (`settings.otel.shutdownTimeout`). */
  shutdownMs: number;
}

type Env = Readonly<Record<string, string | undefined>>;

const DEFAULT_ENDPOINT = 'http://localhost:4318';
const DEFAULT_SHUTDOWN_MS = 5_000;

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim();
  return trimmed ? trimmed : undefined;
}

/** `k1=v1,k2=v2` with percent-encoded values (OTEL_EXPORTER_OTLP_HEADERS); malformed members are skipped. */
export function parseHeaderList(value: string | undefined): Record<string, string> {
  const out: Record<string, string> = Object.create(null) as Record<string, string>;
  if (!value) return out;
  for (const member of value.split(',')) {
    const eq = member.indexOf('=');
    if (eq <= 0) continue;
    const name = member.slice(0, eq).trim();
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) continue;
    try {
      out[name] = decodeURIComponent(member.slice(eq + 1).trim());
    } catch {
      // Not valid percent-encoding: left out rather than sent garbled.
    }
  }
  return out;
}

function withoutSlash(url: string): string {
  return url.endsWith('/') ? url.slice(0, -1) : url;
}

function samplerFrom(settings: OtelSettings | undefined, env: Env): { sampler: SamplerName; ratio: number } {
  const configured = settings?.sampler;
  if (typeof configured === 'number') return { sampler: 'parentbased_traceidratio', ratio: configured };
  if (typeof configured === 'string') return { sampler: configured, ratio: 1 };
  if (configured) return { sampler: configured.name, ratio: configured.ratio ?? 1 };
  const name = nonEmpty(env.OTEL_TRACES_SAMPLER)?.toLowerCase();
  const sampler = (SAMPLER_NAMES as readonly string[]).includes(name ?? '') ? (name as SamplerName) : 'parentbased_always_on';
  const arg = Number(nonEmpty(env.OTEL_TRACES_SAMPLER_ARG) ?? '1');
  return { sampler, ratio: Number.isFinite(arg) && arg >= 0 && arg <= 1 ? arg : 1 };
}

/**
 * `settings.otel.protocol`, else OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, else OTEL_EXPORTER_OTLP_PROTOCOL, else
 * http/protobuf (the specification's default). A variable naming another protocol (`grpc`) is ignored.
 */
function protocolFrom(settings: OtelSettings | undefined, env: Env): Protocol {
  if (settings?.protocol !== undefined) return settings.protocol;
  for (const name of ['OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', 'OTEL_EXPORTER_OTLP_PROTOCOL'] as const) {
    const value = nonEmpty(env[name])?.toLowerCase();
    if (value !== undefined && (PROTOCOLS as readonly string[]).includes(value)) return value as Protocol;
  }
  return 'http/protobuf';
}

/**
 * The tracing options, or null when tracing is off: OTEL_SDK_DISABLED=true, or neither `settings.otel` nor an
 * OTLP endpoint variable is set.
 */
export function resolveTracing(settings: OtelSettings | undefined, env: Env = process.env): TracingOptions | null {
  if (nonEmpty(env.OTEL_SDK_DISABLED)?.toLowerCase() === 'true') return null;
  const tracesEnv = nonEmpty(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
  const baseEnv = nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  if (settings === undefined && tracesEnv === undefined && baseEnv === undefined) return null;
  let tracesUrl: string;
  let baseUrl: string | null;
  if (settings?.endpoint !== undefined) {
    baseUrl = withoutSlash(settings.endpoint);
    tracesUrl = `${baseUrl}/v1/traces`;
  } else if (tracesEnv !== undefined) {
    // Used as it is (the specification appends nothing to the signal-specific variable).
    tracesUrl = tracesEnv;
    baseUrl = baseEnv === undefined ? null : withoutSlash(baseEnv);
  } else {
    baseUrl = withoutSlash(baseEnv ?? DEFAULT_ENDPOINT);
    tracesUrl = `${baseUrl}/v1/traces`;
  }
  const headers = {
    ...parseHeaderList(env.OTEL_EXPORTER_OTLP_HEADERS),
    ...parseHeaderList(env.OTEL_EXPORTER_OTLP_TRACES_HEADERS),
    ...(settings?.headers ?? {}),
  };
  return {
    tracesUrl,
    baseUrl,
    headers,
    protocol: protocolFrom(settings, env),
    ...samplerFrom(settings, env),
    serviceName: settings?.serviceName ?? nonEmpty(env.OTEL_SERVICE_NAME) ?? 'tenement',
    shutdownMs: settings?.shutdownTimeout ?? DEFAULT_SHUTDOWN_MS,
  };
}

/** A W3C baggage-style value (OTEL_RESOURCE_ATTRIBUTES): commas, equals signs and the like percent-encoded. */
const attributeValue = (value: string): string => encodeURIComponent(value);

/**
 * What an instance gets in its environment so its own OpenTelemetry SDK exports to the same collector and its
 * spans name it: the collector (never the export headers, which are the operator's credentials), its service
 * name, and `tenement.service`/`tenement.instance` resource attributes. A value the service's config already
 * sets is kept, except the resource attributes, to which Tenement's are appended (later members win).
 */
export function instanceEnv(options: TracingOptions, service: string, id: string, env: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = { ...env };
  if (options.baseUrl !== null) out.OTEL_EXPORTER_OTLP_ENDPOINT ??= options.baseUrl;
  else out.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??= options.tracesUrl;
  out.OTEL_SERVICE_NAME ??= service;
  const ours = `tenement.service=${attributeValue(service)},tenement.instance=${attributeValue(id)}`;
  const theirs = out.OTEL_RESOURCE_ATTRIBUTES;
  out.OTEL_RESOURCE_ATTRIBUTES = theirs ? `${theirs},${ours}` : ours;
  return out;
}
