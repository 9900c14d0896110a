import semver from 'semver';
import { z } from 'zod';
import { contributionManifest, type FieldShape, type SchemaContribution, type TierDeclaration } from './config/compose.ts';
import { PLUGIN_NAME } from './config/names.ts';
import { pluginSource } from './config/plugin-records.ts';
import { ErrorCodes, TenementError, errorMessage } from './errors.ts';
import type { Kernel } from './kernel.ts';
import { createPluginContext, type KernelAccess, type PluginContext } from './plugin-context.ts';
import { parsePluginOptions } from './plugin-options.ts';
import { KERNEL_VERSION } from './version.ts';

// Defined in version.ts (no semver or zod behind it, for `ten --version`); exported here for every other importer.
export { KERNEL_VERSION };

export interface PluginDefinition<Options = void> extends SchemaContribution {
  name: string;
  version: string;
  /** Semver range of kernel versions this plugin works with, e.g. '^1'. */
  kernel: string;
  /** Plugins that must be set up before this one. */
  dependencies?: string[];
  /** Ordering bucket: 'pre' plugins are set up first, 'post' last. */
  enforce?: 'pre' | 'post';
  /**
   * Tiers this runtime provides: `isolation` and `fallback` accept their names while it is loaded, their traits
   * are declared and their probe tapped before setup runs (setup taps `spawn.for(name)`).
   */
  tiers?: readonly TierDeclaration[];
  /** Fields this plugin adds to `services.<name>`, validated with the rest of the config before any setup. */
  serviceFields?: FieldShape;
  /** Fields this plugin adds to `settings`. */
  settingsFields?: FieldShape;
  /** Its options' schema: `ctx.config` is the parsed output (defaults filled in); bad options stop start-up naming the field. */
  options?: z.ZodType<Options>;
  /** Taps hooks, adds routes, declares tiers: through its own context, never the kernel itself. */
  setup(ctx: PluginContext<Options>): void | Promise<void>;
}

/** Any plugin definition, whatever its options (its options schema typed loosely: setup's ctx is contravariant). */
export type AnyPluginDefinition = Omit<PluginDefinition<never>, 'options'> & { options?: z.ZodType };

/** A plugin, or a plugin with its options. */
export type PluginEntry = AnyPluginDefinition | readonly [AnyPluginDefinition, unknown];

const manifestSchema = z.object({
  name: z.string().regex(PLUGIN_NAME, 'expected a plugin name of lowercase letters, digits, @ / . _ -'),
  version: z.string().refine((v) => semver.valid(v) !== null, 'expected a semver version like 1.0.0'),
  kernel: z.string().refine((r) => semver.validRange(r) !== null, "expected a semver range like '^1'"),
  dependencies: z.array(z.string()).optional(),
  enforce: z.enum(['pre', 'post']).optional(),
  setup: z.custom<(...args: unknown[]) => unknown>((f) => typeof f === 'function', 'expected a setup(ctx) function'),
  ...contributionManifest,
});

interface LoadedPlugin {
  definition: PluginDefinition<unknown>;
  options: unknown;
}

function unpack(entry: unknown): LoadedPlugin {
  if (Array.isArray(entry)) return { definition: entry[0] as PluginDefinition<unknown>, options: entry[1] };
  return { definition: entry as PluginDefinition<unknown>, options: undefined };
}

/** What a nameless plugin entry is, for its error: a string is a module path only in a config's `plugins`. */
function describeEntry(definition: unknown): string {
  if (typeof definition === 'string') return `the string '${definition.slice(0, 200)}': paths and package names are imported from a config file's plugins only`;
  if (definition === null || typeof definition !== 'object') return `a ${definition === null ? 'null' : typeof definition}, not a plugin object`;
  return 'an object without a name';
}

function validate(plugins: LoadedPlugin[]): void {
  const seen = new Set<string>();
  plugins.forEach(({ definition }, index) => {
    const result = manifestSchema.safeParse(definition);
    // Its name, and the file or package it was imported from: never only a position among the built-in plugins.
    const named = typeof (definition as { name?: unknown } | null)?.name === 'string' ? `'${(definition as { name: string }).name}'` : null;
    const source = pluginSource(definition);
    const label = named && source ? `${named} (${source})` : (named ?? (source ? `'${source}'` : `#${index + 1} (${describeEntry(definition)})`));
    if (!result.success) {
      const problems = result.error.issues.map((i) => `${i.path.join('.') || '(plugin)'}: ${i.message}`).join('; ');
      throw new TenementError(ErrorCodes.PLUGIN_MANIFEST, `plugin ${label} has an invalid manifest: ${problems}`, {
        plugin: label,
        hook: 'register',
      });
    }
    if (seen.has(definition.name)) {
      throw new TenementError(ErrorCodes.PLUGIN_DUPLICATE, `plugin '${definition.name}' is registered twice`, {
        plugin: definition.name,
        hook: 'register',
      });
    }
    seen.add(definition.name);
    if (!semver.satisfies(KERNEL_VERSION, definition.kernel)) {
      throw new TenementError(
        ErrorCodes.PLUGIN_KERNEL_VERSION,
        `plugin '${definition.name}' needs kernel ${definition.kernel} but this kernel is ${KERNEL_VERSION}`,
        { plugin: definition.name, hook: 'register' },
      );
    }
  });
}

const BUCKET = { pre: 0, normal: 1, post: 2 } as const;

/**
 * Orders plugins by bucket (pre, normal, post), then so each comes after its dependencies, keeping the given
 * order otherwise. A dependency that is missing, in a later bucket, or part of a cycle stops start-up.
 */
export function orderPlugins(entries: readonly unknown[]): LoadedPlugin[] {
  const plugins = entries.map(unpack);
  validate(plugins);
  const byName = new Map(plugins.map((p) => [p.definition.name, p]));
  const bucketOf = (p: LoadedPlugin): number => BUCKET[p.definition.enforce ?? 'normal'];
  for (const plugin of plugins) {
    for (const dependency of plugin.definition.dependencies ?? []) {
      const target = byName.get(dependency);
      if (!target) {
        throw new TenementError(
          ErrorCodes.PLUGIN_MISSING_DEPENDENCY,
          `plugin '${plugin.definition.name}' depends on '${dependency}', which is not registered`,
          { plugin: plugin.definition.name, hook: 'register' },
        );
      }
      if (bucketOf(target) > bucketOf(plugin)) {
        throw new TenementError(
          ErrorCodes.PLUGIN_MISSING_DEPENDENCY,
          `plugin '${plugin.definition.name}' depends on '${dependency}', which is enforced '${target.definition.enforce}' and so set up after it`,
          { plugin: plugin.definition.name, hook: 'register' },
        );
      }
    }
  }
  const sorted = [...plugins].sort((a, b) => bucketOf(a) - bucketOf(b));
  const ordered: LoadedPlugin[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (plugin: LoadedPlugin, chain: string[]): void => {
    const name = plugin.definition.name;
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      throw new TenementError(ErrorCodes.PLUGIN_MISSING_DEPENDENCY, `plugin dependency cycle: ${[...chain, name].join(' -> ')}`, {
        plugin: name,
        hook: 'register',
      });
    }
    state.set(name, 'visiting');
    for (const dependency of plugin.definition.dependencies ?? []) visit(byName.get(dependency)!, [...chain, name]);
    state.set(name, 'done');
    ordered.push(plugin);
  };
  for (const plugin of sorted) visit(plugin, []);
  return ordered;
}

/** Sets plugins up one by one; a throwing setup stops start-up with the plugin's name in the error. */
export async function setupPlugins(
  kernel: Kernel,
  access: KernelAccess,
  entries: readonly unknown[],
  optionsByName: Readonly<Record<string, unknown>> = {},
): Promise<string[]> {
  const ordered = orderPlugins(entries);
  const loaded = new Set(ordered.map((p) => p.definition.name));
  for (const name of Object.keys(optionsByName)) {
    if (!loaded.has(name)) {
      throw new TenementError(
        ErrorCodes.PLUGIN_MISSING_DEPENDENCY,
        `pluginOptions.${name}: no plugin named '${name}' is loaded (loaded: ${[...loaded].join(', ')})`,
        { plugin: name, hook: 'register' },
      );
    }
  }
  for (const { definition, options } of ordered) {
    try {
      // Options from the config's pluginOptions configure plugins the user did not list themselves (the
      // ones `ten serve` loads by default) as well as their own.
      const given = Object.hasOwn(optionsByName, definition.name) ? optionsByName[definition.name] : options;
      const own = definition.options ? parsePluginOptions(definition.name, definition.options, given) : given;
      const ctx = createPluginContext(kernel, definition, own, access);
      for (const tier of definition.tiers ?? []) {
        ctx.tiers.declare(tier.name, tier.traits ?? {});
        const probe = tier.probe;
        if (probe) ctx.hooks.probe.for(tier.name).tap(async () => probe());
      }
      await definition.setup(ctx);
    } catch (error) {
      throw new TenementError(
        ErrorCodes.PLUGIN_SETUP,
        `plugin '${definition.name}' failed in setup: ${errorMessage(error)}`,
        { plugin: definition.name, hook: 'setup', cause: error },
      );
    }
  }
  return ordered.map((p) => p.definition.name);
}
