/**
 * Where a config's server is, read without zod or the config schema: what a client (`ten ps`) needs from a config
 * it found next to it. The fields that decide the endpoint are `settings.port`, `settings.listen`,
 * `settings.dataDir` (where `admin.token` and `api.sock` are, resolved against the config's folder) and
 * `settings.api.tcp`/`settings.api.socket`. The schema (core/config/schema.ts) takes each of them as is, with the
 * same defaults, so for a valid config these settings are the full loader's (test/unit/server-settings.test.ts
 * compares them on every example); for an invalid one they are its best reading.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ErrorCodes, TenementError } from '../errors.ts';
import type { Config } from './schema.ts';

/** What a client needs of a config to find its server. */
export type ServerSettings = Pick<Config['settings'], 'port' | 'listen' | 'dataDir' | 'api'>;

/** A config file's default export (JSON parsed; TypeScript and JavaScript imported through tsx). */
export async function importConfigModule(file: string): Promise<unknown> {
  if (file.endsWith('.json')) return JSON.parse(readFileSync(file, 'utf8'));
  // tsx compiles TypeScript configs on the fly; plain JavaScript goes through the same door.
  const { tsImport } = await import('tsx/esm/api');
  const loaded = (await tsImport(pathToFileURL(file).href, import.meta.url)) as { default?: unknown };
  // Outside an ESM package a .ts config is compiled as CommonJS, and its default export arrives wrapped once more.
  let value = loaded.default as { default?: unknown; __esModule?: boolean } | undefined;
  if (value && typeof value === 'object' && 'default' in value && (value.__esModule || Object.keys(value).length === 1)) {
    value = value.default as typeof value;
  }
  if (value === undefined) {
    throw new TenementError(ErrorCodes.CONFIG_LOAD, `${file} has no default export: export default defineConfig({...})`);
  }
  return value;
}

/** An object literal or parsed JSON: what the quick reading and zod see alike (no inherited or accessor fields). */
function isPlain(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/**
 * The endpoint settings of a config's default export, each falling back to its default when absent or of the
 * wrong type. `exact` is false when the reading may differ from zod's: `settings` or `settings.api` is an object
 * other than a plain one (a class instance, an array), whose inherited fields zod would see.
 */
export function serverSettingsOf(raw: unknown, file: string): { settings: ServerSettings; exact: boolean } {
  const settings = (typeof raw === 'object' && raw !== null ? (raw as { settings?: unknown }).settings : undefined) as Record<string, unknown> | undefined;
  const field = <T>(name: string, ok: (value: unknown) => value is T, fallback: T): T => {
    const value = typeof settings === 'object' && settings !== null && Object.hasOwn(settings, name) ? settings[name] : undefined;
    return ok(value) ? value : fallback;
  };
  const isString = (v: unknown): v is string => typeof v === 'string' && v.length > 0;
  const isPort = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 65_535;
  const api = field('api', (v): v is Record<string, unknown> => typeof v === 'object' && v !== null, {});
  const exact = (settings === undefined || isPlain(settings)) && (settings === undefined || !Object.hasOwn(settings, 'api') || isPlain(api));
  return {
    exact,
    settings: {
      port: field('port', isPort, 8080),
      listen: field('listen', isString, '127.0.0.1'),
      dataDir: path.resolve(path.dirname(file), field('dataDir', isString, './tenement-data')),
      api: {
        tcp: typeof api.tcp === 'boolean' ? api.tcp : true,
        socket: typeof api.socket === 'boolean' || (typeof api.socket === 'string' && api.socket.length > 0) ? api.socket : true,
      },
    },
  };
}

/**
 * The settings a client needs to find a server, read from a config file without validating it: `ten reload`
 * next to a config being fixed still reaches the server that runs it. Null when the file cannot be imported at all.
 */
export async function readServerSettings(file: string): Promise<ServerSettings | null> {
  const read = await readServerSettingsExact(file);
  return read && read.settings;
}

/** readServerSettings, saying whether the reading is certainly zod's (serverSettingsOf). */
export async function readServerSettingsExact(file: string): Promise<{ settings: ServerSettings; exact: boolean } | null> {
  let raw: unknown;
  try {
    raw = await importConfigModule(file);
  } catch {
    return null;
  }
  return serverSettingsOf(raw, file);
}
