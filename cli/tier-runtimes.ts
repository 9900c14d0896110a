import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { PluginDefinition, PluginEntry } from '../core/plugin.ts';
import { TIERS } from '../core/config/schema.ts';
import { defaultPlugins } from './default-plugins.ts';

const RUNTIMES_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'runtimes');
/** `.ts` in a checkout, `.js` in the built package (dist/). */
const EXTENSION = path.extname(fileURLToPath(import.meta.url));

const nameOf = (entry: PluginEntry): string => (Array.isArray(entry) ? (entry as readonly [PluginDefinition<never>, unknown])[0] : (entry as PluginDefinition<never>)).name;

/**
 * The plugins `ten serve` loads, plus the runtime of every tier this checkout has (runtimes/<tier>/index.ts)
 * that they do not include yet: `ten doctor` and the isolation benchmark cover a tier as soon as its runtime
 * exists. A runtime that fails to load is reported, not fatal: its tier then shows as missing, with the error.
 */
export async function pluginsWithAllRuntimes(
  options: { exclude?: readonly string[] } = {},
): Promise<{ plugins: PluginEntry[]; loadErrors: Map<string, string> }> {
  const plugins = defaultPlugins.filter((entry) => !options.exclude?.includes(nameOf(entry)));
  const names = new Set(plugins.map(nameOf));
  const loadErrors = new Map<string, string>();
  for (const tier of TIERS) {
    const file = path.join(RUNTIMES_DIR, tier, `index${EXTENSION}`);
    if (!existsSync(file)) continue;
    try {
      const module = (await import(pathToFileURL(file).href)) as { default?: PluginDefinition<never> };
      const plugin = module.default;
      if (!plugin || typeof plugin.setup !== 'function') throw new Error(`${file} has no default plugin export`);
      if (names.has(plugin.name)) continue;
      names.add(plugin.name);
      plugins.push(plugin);
    } catch (error) {
      loadErrors.set(tier, `cannot load ${path.relative(process.cwd(), file) || file}: ${(error as Error).message}`);
    }
  }
  return { plugins, loadErrors };
}
