/**
 * The default plugins as `ten serve` loads them: those every server uses are imported with this module; those that
 * do nothing without a config section of their own (a tier's runtime, private networking, tracing, the HAProxy
 * edge, fleet mode, autoscaling) are imported only when the validated config asks for them. Each says what asks
 * for it (`needs`: the config path, or null). An idle server with none of those sections loads none of their code
 * (bench/footprint.ts).
 *
 * The config schema still knows every first-party field (core/config/first-party.ts imports each plugin's
 * schema.ts, never its index.ts), so a config is validated the same whether a plugin is loaded or not. Same list,
 * same order as cli/default-plugins.ts (test/unit/serve-plugins.test.ts), which tools that want them all use.
 */
import { FIRST_PARTY } from '../core/config/first-party.ts';
import type { ResolvedConfig } from '../core/config/loader.ts';
import { ErrorCodes, TenementError } from '../core/errors.ts';
import type { PluginEntry } from '../core/plugin.ts';
import authBearer from '../plugins/auth-bearer/index.ts';
import cgroups from '../plugins/cgroups/index.ts';
import dashboard from '../plugins/dashboard/index.ts';
import discovery from '../plugins/discovery/index.ts';
import health from '../plugins/health/index.ts';
import hibernate from '../plugins/hibernate/index.ts';
import instancesApi from '../plugins/instances-api/index.ts';
import logs from '../plugins/logs/index.ts';
import metrics from '../plugins/metrics/index.ts';
import { leftovers, netNames } from '../plugins/network/names.ts';
import { resolveTracing } from '../plugins/otel/options.ts';
import router from '../plugins/router/index.ts';
import snapshots from '../plugins/snapshots/index.ts';
import storage from '../plugins/storage/index.ts';
import tenantMetrics from '../plugins/tenant-metrics/index.ts';
import wasmPlugins from '../plugins/wasm-plugins/index.ts';
import webhooks from '../plugins/webhooks/index.ts';
import processRuntime from '../runtimes/process/index.ts';

/** What a config needs of the plugins its sections belong to: the fields that are read here. */
type Needs = (config: Pick<ResolvedConfig, 'services' | 'settings' | 'pluginOptions' | 'plugins'>) => string | null;

export interface DefaultPlugin {
  name: string;
  /** Loaded whatever the config (imported with this module). */
  entry?: PluginEntry;
  /** Otherwise: imported when `needs` names what in the config asks for it. */
  load?: () => Promise<PluginEntry>;
  needs?: Needs;
}

/** The first service whose tier chain (isolation, then fallback) names the tier. */
const tier = (name: string): Needs => (config) => {
  for (const [service, c] of Object.entries(config.services)) {
    if (c.isolation === name) return `services.${service}.isolation`;
    if (c.fallback.includes(name)) return `services.${service}.fallback`;
  }
  return null;
};

const anyService = (field: string, test: (service: ResolvedConfig['services'][string]) => boolean): Needs => (config) => {
  for (const [service, c] of Object.entries(config.services)) if (test(c)) return `services.${service}.${field}`;
  return null;
};

const privateNetwork = anyService('network', (c) => c.network !== 'host');

/**
 * Namespaces and veths a crashed run on this data directory left behind: the network plugin removes them at start,
 * so it loads for them even when no service of this config is private (two directory reads).
 */
const previousRunsNamespaces: Needs = (config) => {
  const left = leftovers(netNames(config.settings.dataDir));
  return left.netns.length + left.veths.length > 0 ? 'namespaces left by a previous run' : null;
};

const setting = (field: 'fleet' | 'edge'): Needs => (config) => (config.settings[field] !== undefined ? `settings.${field}` : null);

/** The default plugins, in cli/default-plugins.ts's order. `load` is a function per module: tsc rewrites each literal import() for dist/. */
export const DEFAULT_PLUGINS: readonly DefaultPlugin[] = [
  { name: 'runtime-process', entry: processRuntime },
  { name: 'runtime-namespace', needs: tier('namespace'), load: async () => (await import('../runtimes/namespace/index.ts')).default },
  { name: 'runtime-sandbox', needs: tier('sandbox'), load: async () => (await import('../runtimes/sandbox/index.ts')).default },
  { name: 'runtime-microvm', needs: tier('microvm'), load: async () => (await import('../runtimes/microvm/index.ts')).default },
  { name: 'runtime-wasm', needs: tier('wasm'), load: async () => (await import('../runtimes/wasm/index.ts')).default },
  { name: 'cgroups', entry: cgroups },
  { name: 'storage', entry: storage },
  { name: 'network', needs: (config) => privateNetwork(config) ?? previousRunsNamespaces(config), load: async () => (await import('../plugins/network/index.ts')).default },
  { name: 'discovery', entry: discovery },
  { name: 'router', entry: router },
  { name: 'health', entry: health },
  { name: 'hibernate', entry: hibernate },
  { name: 'snapshots', entry: snapshots },
  { name: 'auth-bearer', entry: authBearer },
  { name: 'instances-api', entry: instancesApi },
  { name: 'logs', entry: logs },
  { name: 'metrics', entry: metrics },
  { name: 'tenant-metrics', entry: tenantMetrics },
  { name: 'wasm-plugins', entry: wasmPlugins },
  { name: 'webhooks', entry: webhooks },
  {
    name: 'otel',
    // Tracing may be on through OTEL_EXPORTER_OTLP_ENDPOINT alone: the plugin's own decision, read the same way.
    needs: (config) => (resolveTracing(config.settings.otel) === null ? null : config.settings.otel ? 'settings.otel' : 'OTEL_EXPORTER_OTLP_ENDPOINT'),
    load: async () => (await import('../plugins/otel/index.ts')).default,
  },
  { name: 'dashboard', entry: dashboard },
  { name: 'edge-haproxy', needs: setting('edge'), load: async () => (await import('../plugins/edge-haproxy/index.ts')).default },
  { name: 'fleet', needs: setting('fleet'), load: async () => (await import('../plugins/fleet/index.ts')).default },
  { name: 'autoscale', needs: anyService('scale', (c) => c.scale !== undefined), load: async () => (await import('../plugins/autoscale/index.ts')).default },
];

/** What the config is validated against: every first-party field and tier, loaded or not, and the always-loaded plugins' own. */
export const CONFIG_PLUGINS: readonly unknown[] = [...FIRST_PARTY, ...DEFAULT_PLUGINS.flatMap((plugin) => (plugin.entry ? [plugin.entry] : []))];

/** Plugin names the config's own plugins depend on: a default one they name is loaded for them. */
function dependedOn(config: Pick<ResolvedConfig, 'plugins'>): Set<string> {
  const names = new Set<string>();
  for (const entry of config.plugins) {
    const definition = (Array.isArray(entry) ? entry[0] : entry) as { dependencies?: unknown } | null;
    const dependencies = definition && typeof definition === 'object' ? definition.dependencies : undefined;
    if (Array.isArray(dependencies)) for (const name of dependencies) if (typeof name === 'string') names.add(name);
  }
  return names;
}

/** Why the config needs this default plugin (a config path), or null; the always-loaded ones answer 'always'. */
export function neededBy(plugin: DefaultPlugin, config: Pick<ResolvedConfig, 'services' | 'settings' | 'pluginOptions' | 'plugins'>): string | null {
  if (plugin.entry) return 'always';
  if (Object.hasOwn(config.pluginOptions, plugin.name)) return `pluginOptions.${plugin.name}`;
  if (dependedOn(config).has(plugin.name)) return 'a plugin of the config depends on it';
  return plugin.needs?.(config) ?? null;
}

/** The default plugins this config needs, imported, in their order. */
export async function loadDefaultPlugins(config: ResolvedConfig): Promise<{ entries: PluginEntry[]; names: string[] }> {
  const chosen = DEFAULT_PLUGINS.filter((plugin) => neededBy(plugin, config) !== null);
  const entries = await Promise.all(chosen.map((plugin) => plugin.entry ?? plugin.load!()));
  return { entries, names: chosen.map((plugin) => plugin.name) };
}

/**
 * A reloaded config's services may ask for a default plugin this server did not load at start (a first service
 * with `scale`, a tier, a private network). The kernel sets plugins up only at start, so such a reload is refused
 * before anything changes, naming what asks and that a restart applies it. Settings and plugin options are kept
 * until a restart anyway (Kernel.reload reports them in needsRestart), so only the services are judged here.
 */
export function checkReloadNeeds(loaded: readonly string[], current: ResolvedConfig, next: ResolvedConfig): void {
  const judged = { services: next.services, settings: current.settings, pluginOptions: current.pluginOptions, plugins: current.plugins };
  const missing: string[] = [];
  for (const plugin of DEFAULT_PLUGINS) {
    if (loaded.includes(plugin.name)) continue;
    const why = neededBy(plugin, judged);
    if (why) missing.push(`'${plugin.name}' (for ${why})`);
  }
  if (missing.length === 0) return;
  throw new TenementError(
    ErrorCodes.CONFIG_INVALID,
    `the new config needs plugin ${missing.join(', ')}, which this server did not load at start (ten serve loads such plugins only when its config asks for them): restart ten serve to apply it`,
  );
}
