import { z } from 'zod';
import { parseDuration, parseSize } from './units.ts';
import { unknownPlaceholders, PLACEHOLDERS } from './interpolate.ts';
import { splitCommand } from '../command.ts';

/** Service names and instance ids are DNS labels: they become parts of a host name. */
export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
export const TIERS = ['process', 'namespace', 'sandbox', 'microvm', 'wasm'] as const;
export type Tier = (typeof TIERS)[number];

const dnsLabel = (what: string) =>
  z
    .string()
    .regex(DNS_LABEL, `expected a DNS label for ${what}: lowercase letters, digits and '-', 1 to 63 characters`);

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration like '500ms', '30s', '5m', '1h' or a number of milliseconds, got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return ms;
});

/** A duration that can also be switched off with `false` or 0 (stored as 0). */
const optionalDuration = z.union([z.literal(false), duration]).transform((value) => (value === false ? 0 : value));

const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a size like '512KB', '256MB', '1GiB' or a number of bytes, got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return bytes;
});

const interpolated = z.string().superRefine((text, ctx) => {
  for (const name of unknownPlaceholders(text)) {
    ctx.addIssue({
      code: 'custom',
      message: `unknown placeholder {${name}}: expected one of ${PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}`,
    });
  }
});

const port = z.number().int().min(0).max(65535);

const healthCheck = z.strictObject({
  /** HTTP path to GET; any 2xx is healthy. Without it the check is a TCP connect to the instance's port. */
  path: z.string().startsWith('/', 'expected an HTTP path starting with /').optional(),
  interval: duration.optional(),
  timeout: duration.optional(),
  /** Consecutive failed checks before the instance is declared unhealthy. */
  failures: z.number().int().min(1).optional(),
});

const backoff = z.strictObject({
  base: duration.default(500),
  max: duration.default(30_000),
  /** A run this long without a crash forgets earlier restarts, so the next delay starts from `base` again. */
  resetAfter: duration.default(60_000),
});

/** Per-instance resource limits, enforced by the cgroups plugin (docs/limits.md). */
const limits = z.strictObject({
  /** Memory (RSS + page cache) the instance's processes may use together; over it, the kernel OOM-kills one. */
  memory: size.optional(),
  /** CPU time as a fraction of one core per period: 0.5 = half a core, 2 = two cores. */
  cpu: z.number().positive().max(1024).optional(),
  /** Processes and threads the instance may have at once. */
  pids: z.number().int().min(1).optional(),
});

export const serviceSchema = z
  .strictObject({
    command: interpolated.min(1, 'expected the command that starts one instance'),
    args: z.array(interpolated).optional(),
    cwd: z.string().optional(),
    env: z.record(z.string(), interpolated).default({}),
    health: z
      .union([z.string().startsWith('/', 'expected an HTTP path starting with /'), healthCheck])
      .optional(),
    isolation: z.enum(TIERS).default('process'),
    /** Tiers to use, in order, when the host cannot provide `isolation`. */
    fallback: z.array(z.enum(TIERS)).default([]),
    idleTimeout: optionalDuration.default(300_000),
    startupTimeout: duration.default(10_000),
    requestTimeout: duration.default(30_000),
    stopTimeout: duration.default(10_000),
    drainTimeout: duration.default(5_000),
    restart: z.enum(['always', 'on-failure', 'never']).default('always'),
    backoff: backoff.default({ base: 500, max: 30_000, resetAfter: 60_000 }),
    maxRestarts: z.number().int().min(0).default(5),
    restartWindow: duration.default(300_000),
    keepData: z.boolean().default(true),
    autoCreate: z.boolean().default(false),
    /** Requests that may wait for one instance to wake; more get 503 at once. */
    wakeQueue: z.number().int().min(1).default(1024),
    /** Weight of a new instance in `{service}.{domain}` traffic, 0 to 100. */
    weight: z.number().int().min(0).max(100).default(100),
    limits: limits.optional(),
    /** The uid (or user name) this service's tenants run as when Tenement runs as root (namespace tier; docs/isolation.md). */
    user: z.union([z.number().int().min(1), z.string().min(1)]).optional(),
  })
  .superRefine((service, ctx) => {
    if (service.args) return;
    try {
      splitCommand(service.command);
    } catch (error) {
      ctx.addIssue({ code: 'custom', path: ['command'], message: (error as Error).message });
    }
  });

const settingsSchema = z.strictObject({
  dataDir: z.string().min(1).default('./tenement-data'),
  domain: z
    .string()
    .transform((d) => d.toLowerCase())
    .pipe(
      z
        .string()
        .regex(
          /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
          'expected a domain name like example.com or localhost',
        ),
    )
    .default('localhost'),
  port: port.default(8080),
  listen: z.string().min(1).default('127.0.0.1'),
  healthInterval: duration.default(10_000),
  healthTimeout: duration.default(5_000),
  unhealthyThreshold: z.number().int().min(1).default(3),
  portRange: z
    .strictObject({ from: port.min(1024), to: port.min(1024) })
    .refine((r) => r.from <= r.to, 'expected from <= to')
    .default({ from: 30_000, to: 39_999 }),
  /** Uids for services without `user` when Tenement runs as root: each service gets a stable one (docs/isolation.md). */
  tenantUids: z
    .strictObject({ from: z.number().int().min(1), to: z.number().int().min(1) })
    .refine((r) => r.from <= r.to, 'expected from <= to')
    .default({ from: 100_000, to: 165_535 }),
  /** Bytes of recent output kept in memory per instance. */
  logBuffer: size.default(1_000_000),
});

const SETTINGS_DEFAULTS = settingsSchema.parse({});

export const configSchema = z
  .strictObject({
    settings: settingsSchema.default(SETTINGS_DEFAULTS),
    services: z.record(dnsLabel('a service name'), serviceSchema).default({}),
    /** Instances started at boot: `{ notes: ['alice', 'bob'] }`. */
    instances: z.record(z.string(), z.array(dnsLabel('an instance id'))).default({}),
    /** Extra plugins (objects made with `definePlugin`), or `[plugin, options]` pairs. */
    plugins: z.array(z.unknown()).default([]),
    /** Options for plugins by name, including the ones loaded by default: `{ metrics: { public: false } }`. */
    pluginOptions: z.record(z.string(), z.unknown()).default({}),
  })
  .superRefine((config, ctx) => {
    for (const service of Object.keys(config.instances)) {
      if (!(service in config.services)) {
        ctx.addIssue({
          code: 'custom',
          path: ['instances', service],
          message: `unknown service '${service}': expected one of the keys of services (${Object.keys(config.services).join(', ') || 'none defined'})`,
        });
      }
    }
  });

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type ServiceInput = z.input<typeof serviceSchema>;
export type ServiceConfig = z.output<typeof serviceSchema>;
export type Settings = z.output<typeof settingsSchema>;
