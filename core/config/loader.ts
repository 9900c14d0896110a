import path from 'node:path';
import { z } from 'zod';
import { ErrorCodes, TenementError, errorMessage } from '../errors.ts';
import { composeSchema, contributionManifest, type SchemaContribution } from './compose.ts';
import { FIRST_PARTY, firstPartyOwner, withFirstParty } from './first-party.ts';
import { buildConfigSchema, CORE_FIELDS, type Config } from './schema.ts';
import { mergeSidecar, pluginSource, resolvePluginSpecifiers } from './plugin-records.ts';

import { findConfigFile } from './find.ts';
import { importConfigModule } from './server-settings.ts';

// Finding the file needs neither zod nor the schema: its own module, for clients that only look (cli/client.ts).
export { CONFIG_FILE_NAMES, findConfigFile } from './find.ts';

export interface ResolvedConfig extends Config {
  /** Where the config came from; relative paths in it (dataDir, cwd) are resolved against `dir`. */
  source: { path: string | null; dir: string };
}

export interface SettingsOverrides {
  dataDir?: string;
  domain?: string;
  port?: number;
  listen?: string;
  /** `ten serve --fleet`: the NATS servers, merged into settings.fleet (its other fields kept). */
  fleet?: { servers: string[] };
}

export async function loadConfig(
  options: { file?: string; cwd?: string; overrides?: SettingsOverrides; plugins?: readonly unknown[] } = {},
): Promise<ResolvedConfig> {
  const file = findConfigFile(options.file, options.cwd);
  let raw: unknown;
  try {
    raw = await importConfigModule(file);
    // Plugins recorded by `ten plugin add`: the sidecar of a code config, and package names to import.
    raw = await resolvePluginSpecifiers(mergeSidecar(raw, file), file);
  } catch (error) {
    if (error instanceof TenementError) throw error;
    throw new TenementError(ErrorCodes.CONFIG_LOAD, `cannot load ${file}: ${errorMessage(error)}`, { cause: error });
  }
  return resolveConfig(raw, { path: file, dir: path.dirname(file) }, options.overrides, options.plugins);
}

// Read without zod by clients (cli/client.ts); here for the callers that import them from the loader.
export { readServerSettings, type ServerSettings } from './server-settings.ts';

type Issue = z.core.$ZodIssue;

/** The message a user needs: for a union, the branch's own words (not "Invalid input"); for a record key, why. */
function issueMessage(issue: Issue): string {
  if (issue.code === 'invalid_union') {
    const branches = issue.errors.flat();
    const specific = branches.find((i) => i.code === 'custom') ?? branches.find((i) => i.code !== 'invalid_value');
    if (specific) return issueMessage(specific);
  }
  if (issue.code === 'invalid_key' && issue.issues.length > 0) return issueMessage(issue.issues[0]!);
  return issue.message;
}

/** Where an unknown key sits: a service's own field, a field of one of its objects (limits), or a setting. */
function unknownKeyOwner(where: readonly PropertyKey[], key: string): string | undefined {
  if (where[0] === 'services' && where.length >= 2) return firstPartyOwner('services', [...where.slice(2).map(String), key].join('.'));
  if (where[0] === 'settings' && where.length === 1) return firstPartyOwner('settings', key);
  return undefined;
}

/** One line per bad field; an unknown key names the first-party plugin that would accept it, when it is not loaded. */
function formatIssues(issues: readonly Issue[], loaded: ReadonlySet<string>): string {
  return issues
    .flatMap((issue) => {
      if (issue.code === 'unrecognized_keys') {
        const hints = issue.keys.flatMap((key) => {
          const owner = unknownKeyOwner(issue.path, key);
          return owner !== undefined && !loaded.has(owner) ? [`'${key}' is accepted by the plugin '${owner}', which is not loaded`] : [];
        });
        const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
        return [`  - ${where}: ${issue.message}${hints.length > 0 ? ` (${hints.join('; ')})` : ''}`];
      }
      const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
      return [`  - ${where}: ${issueMessage(issue)}`];
    })
    .join('\n');
}

/** Step one: the top-level shape, enough to know which plugins the config adds (their fragments come next). */
const topLevelSchema = z.looseObject({ plugins: z.array(z.unknown()).optional() });

/** The schema part of each plugin entry; a malformed one is left to the manifest check at registration. */
function contributionsOf(entries: readonly unknown[]): SchemaContribution[] {
  const manifest = z.looseObject({ name: z.string(), ...contributionManifest });
  return entries.flatMap((entry) => {
    const definition: unknown = Array.isArray(entry) ? entry[0] : entry;
    const parsed = manifest.safeParse(definition);
    if (!parsed.success) {
      const name = (definition as { name?: unknown } | null)?.name;
      if (typeof name !== 'string') return [];
      const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      const source = pluginSource(definition);
      throw new TenementError(ErrorCodes.PLUGIN_MANIFEST, `plugin '${name}'${source ? ` (${source})` : ''} has an invalid manifest: ${problems}`, { plugin: name, hook: 'register' });
    }
    return withFirstParty(definition as SchemaContribution);
  });
}

/**
 * The config's own `plugins` entries that are no plugin at all, reported at their place in the config
 * (`plugins.0`), not at their position after the built-in plugins. A string (or `[string, options]`) is imported
 * by loadConfig; one left here came in another way (an object config given to resolveConfig).
 */
function ownPluginIssues(own: readonly unknown[]): Issue[] {
  return own.flatMap((entry, index): Issue[] => {
    const definition: unknown = Array.isArray(entry) ? entry[0] : entry;
    const name = typeof definition === 'object' && definition !== null ? (definition as { name?: unknown }).name : undefined;
    if (typeof name === 'string') return [];
    const got =
      typeof definition === 'string'
        ? `the path or package name '${definition.slice(0, 200)}', which only a config file's plugins import`
        : typeof definition === 'object' && definition !== null
          ? pluginSource(definition)
            ? `'${pluginSource(definition)}', whose default export has no name`
            : 'an object without a name'
          : `a ${definition === null ? 'null' : typeof definition}`;
    return [{ code: 'custom', path: ['plugins', index], message: `expected a plugin (definePlugin({ name, version, kernel, setup })), got ${got}`, input: undefined }];
  });
}

/** Cross-field checks zod skips while other fields are invalid; run on the raw input so they are reported too. */
function crossFieldIssues(raw: unknown): Issue[] {
  const config = raw as { services?: unknown; instances?: unknown } | null;
  if (typeof config !== 'object' || config === null) return [];
  const services = typeof config.services === 'object' && config.services !== null ? Object.keys(config.services) : [];
  const instances = typeof config.instances === 'object' && config.instances !== null ? Object.keys(config.instances) : [];
  return instances
    .filter((service) => !services.includes(service))
    .map((service) => ({
      code: 'custom',
      path: ['instances', service],
      message: `unknown service '${service}': expected one of the keys of services (${services.join(', ') || 'none defined'})`,
      input: undefined,
    }));
}

/** How deep protoKeyIssues looks: services.x.env is depth 3; plugin options may nest a little more. */
const PROTO_WALK_DEPTH = 8;

/**
 * Own `__proto__` keys (a JSON config can carry them) that zod would drop without a word: a config naming a
 * service, an instance list, a plugin's options or an env variable `__proto__` is reported, not half-applied.
 * Only plain data is walked: plugin objects (with their setup functions) are the plugins' own business.
 */
function protoKeyIssues(value: unknown, where: PropertyKey[] = [], depth = 0): Issue[] {
  if (typeof value !== 'object' || value === null || depth > PROTO_WALK_DEPTH) return [];
  const proto = Object.getPrototypeOf(value) as unknown;
  if (!Array.isArray(value) && proto !== Object.prototype && proto !== null) return [];
  const issues: Issue[] = [];
  for (const [key, child] of Object.entries(value)) {
    if (depth === 0 && key === 'plugins') continue;
    if (key === '__proto__') {
      issues.push({ code: 'custom', path: [...where, key], message: "'__proto__' cannot be a name here: expected a DNS label or a plugin name", input: undefined });
      continue;
    }
    issues.push(...protoKeyIssues(child, [...where, key], depth + 1));
  }
  return issues;
}

/**
 * Validates a config object; every bad field is reported with its path, not just the first. Two steps: the
 * top-level shape (which gives the config's own plugins), then the whole config against core's fields and the
 * fragments and tiers of the loaded plugins: `plugins` (default: the first-party ones, what `ten serve` loads)
 * and the config's `plugins`.
 */
export function resolveConfig(
  raw: unknown,
  source: { path: string | null; dir: string },
  overrides: SettingsOverrides = {},
  plugins: readonly unknown[] = FIRST_PARTY,
): ResolvedConfig {
  const withOverrides = applyOverrides(raw, overrides);
  const where = source.path ?? 'config';
  const top = topLevelSchema.safeParse(withOverrides);
  const own = top.success ? (top.data.plugins ?? []) : [];
  const contributions = contributionsOf([...plugins, ...own]);
  const loaded = new Set(contributions.map((c) => c.name));
  const configSchema = buildConfigSchema(composeSchema(CORE_FIELDS, contributions));
  const result = configSchema.safeParse(withOverrides);
  const protoIssues = [...protoKeyIssues(withOverrides), ...ownPluginIssues(own)];
  if (!result.success || protoIssues.length > 0) {
    const issues = [...(result.success ? [] : result.error.issues), ...protoIssues];
    for (const extra of crossFieldIssues(withOverrides)) {
      if (!issues.some((i) => i.path.join('.') === extra.path.join('.'))) issues.push(extra);
    }
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `invalid config ${where}:\n${formatIssues(issues, loaded)}`);
  }
  // The composed schema's output has the first-party fields when their plugins are loaded (always, in `ten serve`).
  const config = result.data as unknown as Config;
  config.settings.dataDir = path.resolve(source.dir, config.settings.dataDir);
  for (const service of Object.values(config.services)) {
    service.cwd = path.resolve(source.dir, service.cwd ?? '.');
  }
  return { ...config, source };
}

function applyOverrides(raw: unknown, overrides: SettingsOverrides): unknown {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  if (Object.keys(defined).length === 0 || typeof raw !== 'object' || raw === null) return raw;
  const base = raw as { settings?: Record<string, unknown> };
  const fleet = base.settings?.fleet;
  if (defined.fleet && typeof fleet === 'object' && fleet !== null) defined.fleet = { ...fleet, ...defined.fleet };
  return { ...base, settings: { ...(base.settings ?? {}), ...defined } };
}
