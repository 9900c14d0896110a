/**
 * Plugins recorded by `ten plugin add`, and how the loader merges them into the config.
 *
 * A JSON config is data, so `ten plugin add` rewrites it in place. A TypeScript or JavaScript config is code the
 * CLI must not rewrite, so its records go to a sidecar, `tenement.plugins.json` next to it, which the loader
 * merges in: `plugins` (npm package names, trusted in-process plugins) are appended to the config's `plugins`,
 * `wasm` entries (sandboxed components) to `pluginOptions['wasm-plugins'].plugins`.
 *
 * In any config, a string in `plugins` is a module specifier (an npm package or a path relative to the config)
 * whose default export is the plugin; the loader imports it.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCodes, TenementError, errorMessage } from '../errors.ts';

export const SIDECAR_NAME = 'tenement.plugins.json';
/** The option key (plugin name) the sandboxed plugins are listed under. */
export const WASM_PLUGINS_KEY = 'wasm-plugins';

export interface PluginRecords {
  /** npm package names (or paths) of trusted in-process plugins. */
  plugins: string[];
  /** Sandboxed plugin entries, as in `pluginOptions['wasm-plugins'].plugins`. */
  wasm: Array<Record<string, unknown>>;
}

export function sidecarPath(configFile: string): string {
  return path.join(path.dirname(configFile), SIDECAR_NAME);
}

/** The sidecar's records, empty when there is none; a malformed sidecar is an error naming the field. */
export function readSidecar(configFile: string): PluginRecords {
  const file = sidecarPath(configFile);
  if (!existsSync(file)) return { plugins: [], wasm: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new TenementError(ErrorCodes.CONFIG_LOAD, `cannot read ${file}: ${errorMessage(error)}`);
  }
  const records = parsed as Partial<PluginRecords> | null;
  if (typeof records !== 'object' || records === null || Array.isArray(records)) {
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `${file}: expected an object { "plugins": [...], "wasm": [...] }`);
  }
  const plugins = records.plugins ?? [];
  if (!Array.isArray(plugins) || plugins.some((p) => typeof p !== 'string')) {
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `${file}: plugins: expected an array of npm package names`);
  }
  const wasm = records.wasm ?? [];
  if (!Array.isArray(wasm) || wasm.some((w) => typeof w !== 'object' || w === null || Array.isArray(w))) {
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `${file}: wasm: expected an array of plugin entries ({ "path": ..., "hooks": [...] })`);
  }
  return { plugins: plugins as string[], wasm: wasm as Array<Record<string, unknown>> };
}

type RawConfig = Record<string, unknown> & { plugins?: unknown; pluginOptions?: unknown };

/** The config with the sidecar's records merged in (a new object; the module's own stays untouched). */
export function mergeSidecar(raw: unknown, configFile: string): unknown {
  if (typeof raw !== 'object' || raw === null || configFile.endsWith('.json')) return raw;
  const records = readSidecar(configFile);
  if (records.plugins.length === 0 && records.wasm.length === 0) return raw;
  const config = raw as RawConfig;
  const merged: RawConfig = { ...config };
  if (records.plugins.length > 0) merged.plugins = [...(Array.isArray(config.plugins) ? config.plugins : []), ...records.plugins];
  if (records.wasm.length > 0) {
    const options = (typeof config.pluginOptions === 'object' && config.pluginOptions !== null ? config.pluginOptions : {}) as Record<string, unknown>;
    const own = (options[WASM_PLUGINS_KEY] ?? {}) as { plugins?: unknown };
    const ownList = Array.isArray(own.plugins) ? own.plugins : [];
    merged.pluginOptions = { ...options, [WASM_PLUGINS_KEY]: { ...own, plugins: [...ownList, ...records.wasm] } };
  }
  return merged;
}

/** Where each imported plugin came from (its specifier as written), so errors about it can name its file. */
const sources = new WeakMap<object, string>();

/** The specifier a plugin was imported from (`./my-plugin.ts`, a package name), when the loader imported it. */
export function pluginSource(definition: unknown): string | undefined {
  return typeof definition === 'object' && definition !== null ? sources.get(definition) : undefined;
}

const isSpecifierTuple = (entry: unknown): entry is [string, unknown] => Array.isArray(entry) && typeof entry[0] === 'string';

/**
 * Imports every string in `plugins` (resolved from the config's directory) and puts its default export there:
 * `'./my-plugin.ts'`, and `['./my-plugin.ts', { options }]` the same way with its options.
 */
export async function resolvePluginSpecifiers(raw: unknown, configFile: string): Promise<unknown> {
  const config = raw as RawConfig | null;
  if (typeof config !== 'object' || config === null || !Array.isArray(config.plugins)) return raw;
  if (!config.plugins.some((p) => typeof p === 'string' || isSpecifierTuple(p))) return raw;
  const plugins = await Promise.all(
    config.plugins.map(async (entry, index) => {
      if (typeof entry === 'string') return importPlugin(entry, configFile, index);
      if (isSpecifierTuple(entry)) return [await importPlugin(entry[0], configFile, index), ...entry.slice(1)];
      return entry;
    }),
  );
  return { ...config, plugins };
}

/** A plugin module's default export (the plugin), imported as the config file would import it. */
export async function importPlugin(specifier: string, configFile: string, index = 0): Promise<unknown> {
  const { tsImport } = await import('tsx/esm/api');
  const target = specifier.startsWith('.') ? pathToFileURL(path.resolve(path.dirname(configFile), specifier)).href : specifier;
  let loaded: { default?: unknown };
  try {
    loaded = (await tsImport(target, pathToFileURL(configFile).href)) as { default?: unknown };
  } catch (error) {
    throw new TenementError(
      ErrorCodes.CONFIG_LOAD,
      `plugins.${index}: cannot import '${specifier}' from ${path.dirname(configFile)}: ${errorMessage(error)} (install it with \`ten plugin add ${specifier}\`)`,
    );
  }
  let plugin = loaded.default as { default?: unknown } | undefined;
  // A CommonJS build of a plugin arrives wrapped once more.
  if (plugin && typeof plugin === 'object' && 'default' in plugin && !('setup' in plugin)) plugin = plugin.default as typeof plugin;
  if (plugin === undefined) {
    throw new TenementError(ErrorCodes.CONFIG_LOAD, `plugins.${index}: '${specifier}' has no default export (expected export default definePlugin({...}))`);
  }
  if (typeof plugin === 'object' && plugin !== null) sources.set(plugin, specifier);
  return plugin;
}

// ---- writing records (`ten plugin add` / `ten plugin remove`) ----

export type PluginRecord = { kind: 'npm'; name: string } | { kind: 'wasm'; entry: Record<string, unknown> & { name: string } };

/** Where records of this config go: the JSON config itself, or the sidecar of a code config. */
export function recordsFile(configFile: string): string {
  return configFile.endsWith('.json') ? configFile : sidecarPath(configFile);
}

function readJsonObject(file: string): Record<string, unknown> {
  if (!existsSync(file)) return {};
  const parsed: unknown = JSON.parse(readFileSync(file, 'utf8'));
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `${file}: expected a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/** Replaces the file in one rename, so a crash midway leaves the old file, never half a new one. */
function writeJsonAtomically(file: string, value: unknown): void {
  const partial = `${file}.${process.pid}.tmp`;
  writeFileSync(partial, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(partial, file);
}

interface RecordLists {
  npm: unknown[];
  wasm: unknown[];
  /** Puts the lists back into the document. */
  save(npm: unknown[], wasm: unknown[]): Record<string, unknown>;
}

function listsOf(configFile: string, document: Record<string, unknown>): RecordLists {
  if (!configFile.endsWith('.json')) {
    return {
      npm: Array.isArray(document.plugins) ? document.plugins : [],
      wasm: Array.isArray(document.wasm) ? document.wasm : [],
      save: (npm, wasm) => ({ ...document, plugins: npm, wasm }),
    };
  }
  const options = (typeof document.pluginOptions === 'object' && document.pluginOptions !== null ? document.pluginOptions : {}) as Record<string, unknown>;
  const own = (typeof options[WASM_PLUGINS_KEY] === 'object' && options[WASM_PLUGINS_KEY] !== null ? options[WASM_PLUGINS_KEY] : {}) as Record<string, unknown>;
  return {
    npm: Array.isArray(document.plugins) ? document.plugins : [],
    wasm: Array.isArray(own.plugins) ? own.plugins : [],
    save: (npm, wasm) => {
      const next: Record<string, unknown> = { ...document };
      if (npm.length > 0 || 'plugins' in document) next.plugins = npm;
      if (wasm.length > 0 || WASM_PLUGINS_KEY in options) {
        next.pluginOptions = { ...options, [WASM_PLUGINS_KEY]: { ...own, plugins: wasm } };
      }
      return next;
    },
  };
}

const recordName = (entry: unknown): string | null => {
  if (typeof entry === 'string') return entry;
  if (typeof entry === 'object' && entry !== null && typeof (entry as { name?: unknown }).name === 'string') return (entry as { name: string }).name;
  return null;
};

/** Adds a record; the same name recorded again replaces the old record. Returns the file written. */
export function addPluginRecord(configFile: string, record: PluginRecord): string {
  const file = recordsFile(configFile);
  const document = readJsonObject(file);
  const lists = listsOf(configFile, document);
  const name = record.kind === 'npm' ? record.name : record.entry.name;
  const npm = lists.npm.filter((entry) => recordName(entry) !== name);
  const wasm = lists.wasm.filter((entry) => recordName(entry) !== name);
  if (record.kind === 'npm') npm.push(record.name);
  else wasm.push(record.entry);
  writeJsonAtomically(file, lists.save(npm, wasm));
  return file;
}

/** Removes the record named `name` (an npm package or a wasm plugin); false when there was none. */
export function removePluginRecord(configFile: string, name: string): boolean {
  const file = recordsFile(configFile);
  if (!existsSync(file)) return false;
  const document = readJsonObject(file);
  const lists = listsOf(configFile, document);
  const npm = lists.npm.filter((entry) => recordName(entry) !== name);
  const wasm = lists.wasm.filter((entry) => recordName(entry) !== name);
  if (npm.length === lists.npm.length && wasm.length === lists.wasm.length) return false;
  writeJsonAtomically(file, lists.save(npm, wasm));
  return true;
}
