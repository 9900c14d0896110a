import { z } from 'zod';
import { parseDuration } from './units.ts';
import { duration, size } from './fields.ts';
import { composeSchema, type ComposedSchema, type FieldShape } from './compose.ts';
import { FIRST_PARTY, FIRST_PARTY_TIERS, type FirstPartyTier } from './first-party.ts';
import { storageServiceFields } from '../../plugins/storage/schema.ts';
import { tenantMetricsServiceFields } from '../../plugins/tenant-metrics/schema.ts';
import { networkServiceFields, networkSettingsFields } from '../../plugins/network/schema.ts';
import { otelSettingsFields } from '../../plugins/otel/schema.ts';
import { webhooksSettingsFields } from '../../plugins/webhooks/schema.ts';
import { edgeSettingsFields } from '../../plugins/edge-haproxy/schema.ts';
import { fleetServiceFields, fleetSettingsFields } from '../../plugins/fleet/schema.ts';
import { autoscaleServiceFields, autoscaleSettingsFields } from '../../plugins/autoscale/schema.ts';
import { wasmServiceFields } from '../../runtimes/wasm/schema.ts';
import { snapshotsServiceFields } from '../../plugins/snapshots/schema.ts';
import { unknownPlaceholders, PLACEHOLDERS } from './interpolate.ts';
import { splitCommand } from '../command.ts';
import { quote } from 'shell-quote';
import { DNS_LABEL, PLUGIN_NAME } from './names.ts';
import { isServiceEntry } from './egress.ts';
import { LB_MODES } from '../dataplane/balance.ts';

// Defined in names.ts (no zod behind it, for the CLI); exported here too, where every other importer finds it.
export { DNS_LABEL };
/** The first-party tiers (`ten doctor` checks these); the config accepts the tiers of the loaded runtimes. */
export const TIERS = FIRST_PARTY_TIERS;
/** A tier name: the first-party ones are spelled out for completion, a third-party runtime's are accepted too. */
export type Tier = FirstPartyTier | (string & {});
export { STORAGE_MIN_BYTES } from '../../plugins/storage/schema.ts';

const dnsLabel = (what: string) =>
  z
    .string()
    .regex(DNS_LABEL, `expected a DNS label for ${what}: lowercase letters, digits and '-', 1 to 63 characters`);

/** A duration that can also be switched off with `false` or 0 (stored as 0). */
const optionalDuration = z.union([z.literal(false), duration]).transform((value) => (value === false ? 0 : value));



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



/** Per-instance resource limits, enforced by the cgroups plugin (docs/limits.md); other plugins add their own. */
const limits = z.strictObject({
  /** Memory (RSS + page cache) the instance's processes may use together; over it, the kernel OOM-kills one. */
  memory: size.optional(),
  /** CPU time as a fraction of one core per period: 0.5 = half a core, 2 = two cores. */
  cpu: z.number().positive().max(1024).optional(),
  /** Processes and threads the instance may have at once. */
  pids: z.number().int().min(1).optional(),
  // storage and storageWarn: the storage plugin's fragment (plugins/storage/schema.ts), merged in.
});

/** What `autoCreate: true` means: at most 100 instances, each client address creating at most 10 a minute. */
export const AUTO_CREATE_DEFAULTS = { max: 100, perAddress: { count: 10, window: 60_000 } } as const;

/**
 * Instances created on their first request, bounded (core/auto-create.ts): `max` instances in the
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

/** A tier's name; whether some loaded runtime registers it is checked with the service (tierIssues). */
const tierName = z.custom<Tier>((value) => typeof value === 'string', 'expected the name of a tier, like process or sandbox');

/** The fields of `services.<name>` core owns; plugins add theirs (core/config/compose.ts). */
const coreServiceFields = {
    /** Required, except for isolation 'wasm' (which runs `module`). */
    command: interpolated.min(1, 'expected the command that starts one instance').optional(),
    args: z.array(interpolated).optional(),
    cwd: z.string().optional(),
    env: z.record(z.string(), interpolated).default({}),
    health: z
      .union([z.string().startsWith('/', 'expected an HTTP path starting with /'), healthCheck])
      .optional(),
    /** A tier some loaded runtime registers (checked in buildServiceSchema). */
    isolation: tierName.default('process'),
    /** Tiers to use, in order, when the host cannot provide `isolation`. */
    fallback: z.array(tierName).default([]),
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
    /** How `{service}.{domain}` picks among its running instances (docs/lb.md); the proxy workers follow it too. */
    lb: z
      .enum(LB_MODES, { error: "expected lb 'weighted' (drawn by weight), 'least-requests' (fewest in flight) or 'p2c' (power of two choices over in-flight counts, weights as a bias)" })
      .default('weighted'),
    limits: limits.optional(),
    /** The uid (or user name) this service's tenants run as when Tenement runs as root, in every tier (docs/isolation.md). */
    user: z.union([z.number().int().min(1), z.string().min(1)]).optional(),
    /** isolation 'wasm': the .wasm file to serve, a component or a WASI preview 1 CGI module, relative to cwd (docs/wasm.md). */
    module: z.string().min(1, 'expected the path of a .wasm file').optional(),
    /** port: listen on HOST:PORT; socket: on the Unix socket SOCKET_PATH (in DATA_DIR). */
    listen: z.enum(['port', 'socket']).default('port'),
};

const coreSettingsFields = {
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
  /** The built-in proxy's processes: 1 (the kernel's own, the default), a number, or 'auto' (one per core): docs/architecture.md#proxy-workers. */
  proxy: z
    .strictObject({
      workers: z.union([z.number().int().min(1).max(64), z.literal('auto')]).default(1),
      /** 'spill' (default): workers accept only while the accepting ones are saturated and a core is idle (core/dataplane/workers/spill.ts); 'spread': every proxy process accepts. */
      accept: z.enum(['spread', 'spill']).default('spill'),
      /** 'busy' (default): a proxy process's busy event loop stays on the CPU it runs on until the load ends (core/dataplane/cpu-pin.ts); 'off': never pinned. */
      pin: z.enum(['busy', 'off']).default('busy'),
    })
    .default({ workers: 1, accept: 'spill', pin: 'busy' }),

};

/** Core's own fields, the base the loaded plugins' fragments are merged into. */
export const CORE_FIELDS: { serviceFields: FieldShape; settingsFields: FieldShape } = {
  serviceFields: coreServiceFields,
  settingsFields: coreSettingsFields,
};

/** `isolation` and `fallback` name tiers some loaded runtime registers; an unknown one names the plugin that has it. */
function tierIssues(service: { isolation: string; fallback: readonly string[] }, tiers: ReadonlyMap<string, string>, ctx: z.RefinementCtx): void {
  const check = (tier: string, path: PropertyKey[]): void => {
    if (tiers.has(tier)) return;
    const known = firstPartyTierOwner(tier);
    const hint = known ? ` ('${tier}' is registered by the plugin '${known}', which is not loaded)` : '';
    ctx.addIssue({ code: 'custom', path, message: `unknown tier '${tier}': expected one of ${[...tiers.keys()].join(', ') || 'none (no runtime loaded)'}${hint}` });
  };
  check(service.isolation, ['isolation']);
  service.fallback.forEach((tier, index) => check(tier, ['fallback', index]));
}

function firstPartyTierOwner(tier: string): string | undefined {
  return FIRST_PARTY.find((c) => c.tiers?.some((t) => t.name === tier))?.name;
}

type CoreServiceOutput = z.output<z.ZodObject<typeof coreServiceFields>>;

/** The schema of `services.<name>`: core's fields and the loaded plugins' (`fields` includes core's). */
export function buildServiceSchema<F extends FieldShape>(fields: F, tiers: ReadonlyMap<string, string>) {
  // The checks read core's fields (always there) and, loosely, plugin fields that may be absent.
  const core = (service: unknown) => service as CoreServiceOutput & { network?: string; egress?: unknown };
  return z
    .strictObject(fields)
    .superRefine((raw, ctx) => {
      const service = core(raw);
      tierIssues(service, tiers, ctx);
      // network and egress are the network plugin's fields: these checks apply when it is loaded.
      const { network, egress } = service;
      if (egress !== undefined && network !== undefined && network !== 'private') {
        ctx.addIssue({ code: 'custom', path: ['egress'], message: `egress applies only to network: 'private' (this service has network: '${network}')` });
      }
      if (network === 'none' && service.listen !== 'socket') {
        ctx.addIssue({ code: 'custom', path: ['listen'], message: "network: 'none' has loopback only, so the proxy cannot reach a port: set listen: 'socket'" });
      }
    })
    .superRefine((raw, ctx) => {
      const service = core(raw);
      if (service.isolation === 'wasm') {
        if (service.module === undefined) {
          ctx.addIssue({ code: 'custom', path: ['module'], message: "expected the .wasm file to serve (a component or a WASI preview 1 module) for isolation: 'wasm'" });
        }
      } else {
        if (service.command === undefined) ctx.addIssue({ code: 'custom', path: ['command'], message: 'expected the command that starts one instance' });
        if (service.module !== undefined) ctx.addIssue({ code: 'custom', path: ['module'], message: `module is only used with isolation: 'wasm' (this service has isolation: '${service.isolation}')` });
      }
    })
    .superRefine((raw, ctx) => {
      const service = core(raw);
      if (service.args || service.command === undefined) return;
      try {
        splitCommand(service.command);
      } catch (error) {
        ctx.addIssue({ code: 'custom', path: ['command'], message: (error as Error).message });
      }
    })
    // A wasm service's "command" is its module, so every spawn spec still names what it runs.
    .transform((raw) => {
      const { command, ...service } = raw as z.output<z.ZodObject<F, z.core.$strict>> & { command?: string; module?: string };
      return { ...service, command: command ?? quote([service.module ?? '']) };
    });
}

export function buildSettingsSchema<F extends FieldShape>(fields: F) {
  return z.strictObject(fields);
}

/** The whole config, for the fields and tiers of a set of loaded plugins (core/config/loader.ts). */
export function buildConfigSchema<S extends FieldShape, T extends FieldShape>(composed: { serviceFields: S; settingsFields: T; tiers: ReadonlyMap<string, string> }) {
  const settingsSchema = buildSettingsSchema(composed.settingsFields);
  const settingsDefaults = settingsSchema.parse({});
  const serviceSchema = buildServiceSchema(composed.serviceFields, composed.tiers);
  return z
    .strictObject({
      settings: settingsSchema.default(settingsDefaults as never),
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
      // A bare name in `egress` is a service the tenant may call by name (docs/discovery.md): it must exist.
      for (const [name, service] of Object.entries(config.services)) {
        const egress = (service as { egress?: unknown }).egress;
        if (!Array.isArray(egress)) continue;
        egress.forEach((entry: unknown, index) => {
          if (typeof entry !== 'string' || !isServiceEntry(entry) || Object.hasOwn(config.services, entry)) return;
          ctx.addIssue({
            code: 'custom',
            path: ['services', name, 'egress', index],
            message: `unknown service '${entry}': expected an address, a CIDR, or the name of a service (${Object.keys(config.services).join(', ')})`,
          });
        });
      }
    });
}

/**
 * The first-party plugins' fields, spelled out so the types below (and the SDK's ConfigInput) know them. At
 * run time the loader composes the schema of the plugins actually loaded (composeSchema), the same way.
 */
const firstPartyServiceFields = {
  ...coreServiceFields,
  ...networkServiceFields,
  ...wasmServiceFields,
  ...tenantMetricsServiceFields,
  ...fleetServiceFields,
  ...autoscaleServiceFields,
  ...snapshotsServiceFields,
  limits: z.strictObject({ ...limits.shape, ...storageServiceFields.limits.unwrap().shape }).optional(),
};
const firstPartySettingsFields = { ...coreSettingsFields, ...networkSettingsFields, ...webhooksSettingsFields, ...otelSettingsFields, ...edgeSettingsFields, ...fleetSettingsFields, ...autoscaleSettingsFields };

/** Everything `ten serve` loads by default, composed: what plugins see as ServiceConfig and Settings. */
export const FIRST_PARTY_SCHEMA: ComposedSchema = composeSchema(CORE_FIELDS, FIRST_PARTY);

export const serviceSchema = buildServiceSchema(firstPartyServiceFields, FIRST_PARTY_SCHEMA.tiers);
const settingsSchema = buildSettingsSchema(firstPartySettingsFields);
export const configSchema = buildConfigSchema({ serviceFields: firstPartyServiceFields, settingsFields: firstPartySettingsFields, tiers: FIRST_PARTY_SCHEMA.tiers });

export type ConfigInput = z.input<typeof configSchema>;
export type Config = z.output<typeof configSchema>;
export type ServiceInput = z.input<typeof serviceSchema>;
export type ServiceConfig = z.output<typeof serviceSchema>;
export type Settings = z.output<typeof settingsSchema>;
