import { z } from 'zod';
import { parseDuration, parseSize } from './units.ts';
import { unknownPlaceholders, PLACEHOLDERS } from './interpolate.ts';
import { splitCommand } from '../command.ts';
import { quote } from 'shell-quote';
import { ipv4Aligned, parseCidr } from './cidr.ts';
import { DNS_LABEL, PLUGIN_NAME } from './names.ts';

// Defined in names.ts (no zod behind it, for the CLI); exported here too, where every other importer finds it.
export { DNS_LABEL };
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

/** Smallest `limits.storage`: below it an ext4 image is mostly journal and inode tables. */
export const STORAGE_MIN_BYTES = 16 * 1024 * 1024;

/**
 * What happens to an instance's data when it is removed: `true` keeps it, `false` deletes it at once, a
 * duration ('7d', '12h') deletes it that long after the removal (storage plugin, `ten gc`). Output: a boolean, or
 * the retention in milliseconds.
 */
const keepData = z.union([z.boolean(), z.string(), z.number()]).transform((value, ctx): boolean | number => {
  if (typeof value === 'boolean') return value;
  const ms = parseDuration(value);
  if (ms === undefined || ms === 0) {
    ctx.addIssue({
      code: 'custom',
      message: `expected true (keep the data of a removed instance), false (delete it on removal) or a retention like '7d', '12h' or '30m' (delete it that long after the removal), got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return ms;
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

/** An address or CIDR a private instance may reach (docs/network.md). */
const egressEntry = z.string().transform((value, ctx) => {
  try {
    return parseCidr(value).text;
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: (error as Error).message });
    return z.NEVER;
  }
});

/** Where veth pairs of private instances take their addresses: one /30 per instance. */
const networkSettings = z.strictObject({
  range: z
    .string()
    .default('10.231.0.0/16')
    .superRefine((value, ctx) => {
      let cidr;
      try {
        cidr = parseCidr(value);
      } catch (error) {
        return ctx.addIssue({ code: 'custom', message: (error as Error).message });
      }
      if (cidr.family !== 4) return ctx.addIssue({ code: 'custom', message: `expected an IPv4 range like 10.231.0.0/16, got ${JSON.stringify(value)}` });
      if (cidr.prefix > 29) return ctx.addIssue({ code: 'custom', message: `expected a range of at least /29 (two instances), got /${cidr.prefix}` });
      if (!ipv4Aligned(cidr)) ctx.addIssue({ code: 'custom', message: `${value} has host bits set: expected the network address of the range` });
    }),
  /** Forward and masquerade private instances' traffic to allowed addresses off this host (host-wide ip_forward; docs/network.md). */
  nat: z.boolean().default(false),
});

/** How a wasm service's requests run in the shared worker pool (docs/wasm.md). */
const wasmOptions = z.strictObject({
  /** Wall-clock deadline of one request in the pool (queue wait included); past it the worker is replaced and the request gets 504. */
  timeout: duration.default(10_000),
  /** A new instance for every request instead of one kept per tenant (WASI CGI modules always start fresh). */
  fresh: z.boolean().default(false),
  /** Requests of one instance in the pool (running or queued) beyond which new ones get 503 at once. */
  maxQueue: z.number().int().min(1).default(256),
  /** Largest request body passed to the guest; a bigger one gets 413. */
  maxBody: size.default(10_000_000),
});

/** Per-instance resource limits, enforced by the cgroups plugin (docs/limits.md). */
const limits = z.strictObject({
  /** Memory (RSS + page cache) the instance's processes may use together; over it, the kernel OOM-kills one. */
  memory: size.optional(),
  /** CPU time as a fraction of one core per period: 0.5 = half a core, 2 = two cores. */
  cpu: z.number().positive().max(1024).optional(),
  /** Processes and threads the instance may have at once. */
  pids: z.number().int().min(1).optional(),
  /**
   * Size of the instance's DATA_DIR: a hard limit (ENOSPC past it), enforced by a loop-mounted ext4 image of
   * this size (storage plugin, docs/storage.md). ext4's own metadata takes part of it (about 12% at 64MiB).
   */
  storage: size
    .refine((bytes) => bytes >= STORAGE_MIN_BYTES, `expected at least 16MiB: a smaller ext4 image is mostly its own metadata`)
    .optional(),
  /** Share of the storage limit in use at which a 'storage-warning' event is emitted (once per crossing). */
  storageWarn: z.number().gt(0, 'expected a share of the limit above 0, like 0.9').max(1, 'expected a share of the limit up to 1, like 0.9').default(0.9),
});

/** What `autoCreate: true` means: at most 100 instances, each client address creating at most 10 a minute. */
export const AUTO_CREATE_DEFAULTS = { max: 100, perAddress: { count: 10, window: 60_000 } } as const;

/**
 * Instances created on their first request, bounded (plugins/router/auto-create.ts): `max` instances in the
 * service (however they were made), `perAddress.count` creations per client address per `perAddress.window`.
 * Output: false, or the bounds with defaults filled in.
 */
const autoCreate = z
  .union([
    z.boolean(),
    z.strictObject({
      max: z.number().int().min(1).default(AUTO_CREATE_DEFAULTS.max),
      perAddress: z
        .strictObject({
          count: z.number().int().min(1).default(AUTO_CREATE_DEFAULTS.perAddress.count),
          window: duration
            .refine((ms) => ms > 0, 'expected a window above 0, like 1m')
            .default(AUTO_CREATE_DEFAULTS.perAddress.window),
        })
        .default({ ...AUTO_CREATE_DEFAULTS.perAddress }),
    }),
  ])
  .transform((value) =>
    value === false ? false : value === true ? { max: AUTO_CREATE_DEFAULTS.max, perAddress: { ...AUTO_CREATE_DEFAULTS.perAddress } } : value,
  );

/**
 * What a tenant token may do with this service beyond acting on its own instances (docs/auth.md): create its
 * instance, and give it a weight in `{service}.{domain}` traffic up to `maxWeight` (0: never in the pool).
 */
const tenantGrant = z.strictObject({
  create: z.boolean().default(false),
  maxWeight: z.number().int().min(0).max(100).default(0),
});

export const serviceSchema = z
  .strictObject({
    /** Required, except for isolation 'wasm' (which runs `module`). */
    command: interpolated.min(1, 'expected the command that starts one instance').optional(),
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
    keepData: keepData.default(true),
    autoCreate: autoCreate.default(false),
    /** Tenant tokens' grant: create their own instance, weights up to maxWeight. Default: neither. */
    tenants: tenantGrant.default({ create: false, maxWeight: 0 }),
    /** Requests that may wait for one instance to wake; more get 503 at once. */
    wakeQueue: z.number().int().min(1).default(1024),
    /** Weight of a new instance in `{service}.{domain}` traffic, 0 to 100. */
    weight: z.number().int().min(0).max(100).default(100),
    limits: limits.optional(),
    /** The uid (or user name) this service's tenants run as when Tenement runs as root, in every tier (docs/isolation.md). */
    user: z.union([z.number().int().min(1), z.string().min(1)]).optional(),
    /** isolation 'wasm': the .wasm file to serve, a component or a WASI preview 1 CGI module, relative to cwd (docs/wasm.md). */
    module: z.string().min(1, 'expected the path of a .wasm file').optional(),
    /** isolation 'wasm': deadline, instance reuse and queue bound of the service's requests (docs/wasm.md). */
    wasm: wasmOptions.optional(),
    /** host: the host's network; private: own network namespace behind a veth; none: loopback only (docs/network.md). */
    network: z.enum(['host', 'private', 'none']).default('host'),
    /** Addresses or CIDRs a `private` instance may connect to; everything else is refused (docs/network.md). */
    egress: z.array(egressEntry).optional(),
    /** port: listen on HOST:PORT; socket: on the Unix socket SOCKET_PATH (in DATA_DIR). */
    listen: z.enum(['port', 'socket']).default('port'),
  })
  .superRefine((service, ctx) => {
    if (service.egress && service.network !== 'private') {
      ctx.addIssue({ code: 'custom', path: ['egress'], message: `egress applies only to network: 'private' (this service has network: '${service.network}')` });
    }
    if (service.network === 'none' && service.listen !== 'socket') {
      ctx.addIssue({ code: 'custom', path: ['listen'], message: "network: 'none' has loopback only, so the proxy cannot reach a port: set listen: 'socket'" });
    }
  })
  .superRefine((service, ctx) => {
    if (service.isolation === 'wasm') {
      if (service.module === undefined) {
        ctx.addIssue({ code: 'custom', path: ['module'], message: "expected the .wasm file to serve (a component or a WASI preview 1 module) for isolation: 'wasm'" });
      }
    } else {
      if (service.command === undefined) ctx.addIssue({ code: 'custom', path: ['command'], message: 'expected the command that starts one instance' });
      if (service.module !== undefined) ctx.addIssue({ code: 'custom', path: ['module'], message: `module is only used with isolation: 'wasm' (this service has isolation: '${service.isolation}')` });
    }
  })
  .superRefine((service, ctx) => {
    if (service.args || service.command === undefined) return;
    try {
      splitCommand(service.command);
    } catch (error) {
      ctx.addIssue({ code: 'custom', path: ['command'], message: (error as Error).message });
    }
  })
  // A wasm service's "command" is its module, so every spawn spec still names what it runs.
  .transform(({ command, ...service }) => ({ ...service, command: command ?? quote([service.module ?? '']) }));

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
    // Below Linux's ephemeral range (32768-60999 by default), where client sockets could take an instance's port.
    .default({ from: 20_000, to: 29_999 }),
  /** Uids for instances of services without `user` when Tenement runs as root: one per instance, kept in the state database (docs/isolation.md). */
  tenantUids: z
    .strictObject({ from: z.number().int().min(1), to: z.number().int().min(1) })
    .refine((r) => r.from <= r.to, 'expected from <= to')
    .default({ from: 100_000, to: 165_535 }),
  /** Bytes of recent output kept in memory per instance. */
  logBuffer: size.default(1_000_000),
  /** Addresses for private instances' veth pairs (docs/network.md). */
  network: networkSettings.default({ range: '10.231.0.0/16', nat: false }),
  /** Where the management API is served: the TCP listener and a Unix socket (docs/api.md#where-the-api-listens). */
  api: z
    .strictObject({
      /** false: `/api/*` on the TCP listener answers 404 whatever the Host, so tenants cannot reach it; the socket serves it. */
      tcp: z.boolean().default(true),
      /** true: `{dataDir}/api.sock`; a path (relative to dataDir); false: no socket. Mode 0600, owned by the server's user. */
      socket: z.union([z.boolean(), z.string().min(1)]).default(true),
    })
    .refine((api) => api.tcp || api.socket !== false, 'tcp: false needs socket: the management API would be served nowhere')
    .default({ tcp: true, socket: true }),
});

const SETTINGS_DEFAULTS = settingsSchema.parse({});

export const configSchema = z
  .strictObject({
    settings: settingsSchema.default(SETTINGS_DEFAULTS),
    services: z.record(dnsLabel('a service name'), serviceSchema).default({}),
    /** Instances started at boot: `{ notes: ['alice', 'bob'] }`. */
    instances: z.record(dnsLabel('a service name'), z.array(dnsLabel('an instance id'))).default({}),
    /** Extra plugins (objects made with `definePlugin`), or `[plugin, options]` pairs. */
    plugins: z.array(z.unknown()).default([]),
    /** Options for plugins by name, including the ones loaded by default: `{ metrics: { public: false } }`. */
    pluginOptions: z
      .record(z.string().regex(PLUGIN_NAME, 'expected the name of a loaded plugin (lowercase letters, digits, @ / . _ -)'), z.unknown())
      .default({}),
  })
  .superRefine((config, ctx) => {
    for (const service of Object.keys(config.instances)) {
      if (!Object.hasOwn(config.services, service)) {
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
