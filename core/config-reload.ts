/**
 * Reloading the config of a running server (`ten serve` on SIGHUP): services added, removed and changed are
 * applied; the listener, the plugins and every instance of an unchanged service are left alone, so traffic to
 * them never notices. What cannot change without a restart (settings, the plugin list, plugin options) is kept
 * as it was and named in the result.
 *
 * A changed service's new config is given to its instances at once: fields read per request, per check or per
 * stop take effect immediately (IMMEDIATE_FIELDS); those a runtime reads when it starts a process take effect at
 * each instance's next start (a restart, a wake, a crash), not by restarting running instances (START_FIELDS).
 */
import type { ResolvedConfig } from './config/loader.ts';
import { ownValue } from './config/lookup.ts';
import type { ServiceConfig } from './config/schema.ts';
import type { Instance } from './instance.ts';
import type { Kernel } from './kernel.ts';
import { sealStateDir } from './state-dir.ts';
import { chooseTiers } from './tiers.ts';

/** Read when a process is started: changed, they apply at each instance's next start. */
export const START_FIELDS: readonly string[] = ['command', 'args', 'cwd', 'env', 'isolation', 'fallback', 'user', 'network', 'egress', 'module', 'wasm', 'listen', 'limits'];

/** Read per request, per health check, per stop or per restart decision: changed, they apply at once. */
export const IMMEDIATE_FIELDS: readonly string[] = [
  'health',
  'idleTimeout',
  'startupTimeout',
  'requestTimeout',
  'stopTimeout',
  'drainTimeout',
  'restart',
  'backoff',
  'maxRestarts',
  'restartWindow',
  'keepData',
  'autoCreate',
  'tenants',
  'wakeQueue',
  'weight',
];

export interface ServiceChange {
  service: string;
  /** Top-level fields of the service whose value changed. */
  fields: string[];
  /** Those of `fields` that wait for each instance's next start. */
  atNextStart: string[];
}

export interface ConfigDiff {
  added: string[];
  removed: string[];
  changed: ServiceChange[];
  /** Paths (`settings.port`, `plugins`, `pluginOptions.metrics`) that changed but need a restart: kept as they were. */
  needsRestart: string[];
}

/** JSON with object keys sorted, so two configs that say the same thing in another order compare equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return typeof v === 'function' ? `[function ${v.name}]` : v;
    return Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  });
}

const differs = (a: unknown, b: unknown): boolean => canonical(a) !== canonical(b);

/** Keys of two records whose values differ (present in one only counts). */
function changedKeys(a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((key) => differs(ownValue(a, key), ownValue(b, key))).sort();
}

/** A config plugin entry as something comparable: its name, version and options (its code is not compared). */
function pluginIdentity(entry: unknown): unknown {
  const [plugin, options] = Array.isArray(entry) ? [entry[0], entry[1]] : [entry, undefined];
  const p = plugin as { name?: unknown; version?: unknown } | null;
  return { name: p?.name, version: p?.version, options };
}

export function diffConfig(current: ResolvedConfig, next: ResolvedConfig): ConfigDiff {
  const added = Object.keys(next.services).filter((name) => !Object.hasOwn(current.services, name));
  const removed = Object.keys(current.services).filter((name) => !Object.hasOwn(next.services, name));
  const changed: ServiceChange[] = [];
  for (const name of Object.keys(next.services)) {
    const before = ownValue(current.services, name);
    if (!before) continue;
    const fields = changedKeys(before as Record<string, unknown>, ownValue(next.services, name) as Record<string, unknown>);
    if (fields.length > 0) changed.push({ service: name, fields, atNextStart: fields.filter((f) => !IMMEDIATE_FIELDS.includes(f)) });
  }
  const needsRestart = [
    ...changedKeys(current.settings as unknown as Record<string, unknown>, next.settings as unknown as Record<string, unknown>).map((key) => `settings.${key}`),
    ...(differs(current.plugins.map(pluginIdentity), next.plugins.map(pluginIdentity)) ? ['plugins'] : []),
    ...changedKeys(current.pluginOptions, next.pluginOptions).map((key) => `pluginOptions.${key}`),
  ];
  return { added, removed, changed, needsRestart };
}

/**
 * Applies `next`'s services and instances to a started kernel; everything else stays `kernel.config`'s. In
 * order: the new tiers are chosen (a service no runtime provides refuses the whole reload, before anything
 * changed); the service table is swapped (from then on the router sends nothing to a removed service, 404);
 * changed services' instances get their new config; removed services' instances are drained and stopped, their
 * rows kept in the state database (as at a start with the service gone: re-adding it brings them back); added
 * services get their stored instances back and `instances` entries of the config are created and started.
 */
export async function reloadServices(kernel: Kernel, next: ResolvedConfig): Promise<ConfigDiff> {
  const current = kernel.config;
  const diff = diffConfig(current, next);
  const touched = [...diff.added, ...diff.changed.map((c) => c.service)];
  const tiers = await chooseTiers(Object.fromEntries(touched.map((name) => [name, ownValue(next.services, name)!])), kernel.hooks, kernel.log);

  kernel.replaceServices(next.services, next.instances, tiers, diff.removed);
  // New services' folders are created sealed (0700/0711) like those of a start, not with the umask's modes.
  sealStateDir(current.settings.dataDir, next.services, kernel.log);

  for (const { service } of diff.changed) {
    const config = ownValue(next.services, service)!;
    for (const instance of kernel.instances.ofService(service)) (instance as Instance).config = config;
  }
  const stops = diff.removed.flatMap((service) =>
    [...kernel.instances.ofService(service)].map(async (instance) => {
      await kernel.supervisor.stop(instance, { to: 'stopped', reason: 'service removed from the config' }).catch((error: unknown) => {
        kernel.log.warn({ instance: instance.key, err: String(error) }, 'stop of a removed service failed');
      });
      kernel.instances.remove(instance, 'service removed from the config');
    }),
  );

  const toStart: Instance[] = [];
  const added = new Set(diff.added);
  for (const row of kernel.store.listInstances()) {
    if (!added.has(row.service) || kernel.instances.get(row.service, row.id)) continue;
    const instance = kernel.instances.create(row.service, row.id, ownValue(next.services, row.service) as ServiceConfig);
    instance.tier = kernel.tierOf(row.service).tier;
    instance.weight = row.weight;
    if (row.desired === 'running') toStart.push(instance);
    else kernel.instances.transition(instance, row.desired, row.desired === 'hibernated' ? 'hibernated' : 'stopped', 'restored');
  }
  for (const [service, ids] of Object.entries(next.instances)) {
    for (const id of ids) {
      if (kernel.instances.get(service, id)) continue;
      toStart.push(kernel.createInstance(service, id));
    }
  }
  for (const instance of toStart) void kernel.supervisor.start(instance, 'reload');
  await Promise.all(stops);
  return diff;
}
