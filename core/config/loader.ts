import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { z } from 'zod';
import { ErrorCodes, TenementError, errorMessage } from '../errors.ts';
import { configSchema, type Config } from './schema.ts';

export const CONFIG_FILE_NAMES = [
  'tenement.config.ts',
  'tenement.config.mts',
  'tenement.config.js',
  'tenement.config.mjs',
  'tenement.config.json',
] as const;

export interface ResolvedConfig extends Config {
  /** Where the config came from; relative paths in it (dataDir, cwd) are resolved against `dir`. */
  source: { path: string | null; dir: string };
}

export interface SettingsOverrides {
  dataDir?: string;
  domain?: string;
  port?: number;
  listen?: string;
}

/** `--config`, then `TENEMENT_CONFIG`, then the first config file found walking up from `cwd`. */
export function findConfigFile(explicit?: string, cwd = process.cwd(), env = process.env): string {
  const chosen = explicit ?? env.TENEMENT_CONFIG;
  if (chosen) {
    const absolute = path.resolve(cwd, chosen);
    if (!existsSync(absolute)) {
      throw new TenementError(ErrorCodes.CONFIG_NOT_FOUND, `config file ${absolute} does not exist`);
    }
    return absolute;
  }
  for (let dir = path.resolve(cwd); ; dir = path.dirname(dir)) {
    for (const name of CONFIG_FILE_NAMES) {
      const candidate = path.join(dir, name);
      if (existsSync(candidate)) return candidate;
    }
    if (path.dirname(dir) === dir) break;
  }
  throw new TenementError(
    ErrorCodes.CONFIG_NOT_FOUND,
    `no ${CONFIG_FILE_NAMES[0]} (or .js, .mjs, .json) found in ${cwd} or any parent directory; ` +
      'create one, or pass --config <file> or TENEMENT_CONFIG',
  );
}

async function importConfigModule(file: string): Promise<unknown> {
  if (file.endsWith('.json')) return JSON.parse(await readFile(file, 'utf8'));
  // tsx compiles TypeScript configs on the fly; plain JavaScript goes through the same door.
  const { tsImport } = await import('tsx/esm/api');
  const loaded = (await tsImport(pathToFileURL(file).href, import.meta.url)) as { default?: unknown };
  if (loaded.default === undefined) {
    throw new TenementError(ErrorCodes.CONFIG_LOAD, `${file} has no default export: export default defineConfig({...})`);
  }
  return loaded.default;
}

export async function loadConfig(options: { file?: string; cwd?: string; overrides?: SettingsOverrides } = {}): Promise<ResolvedConfig> {
  const file = findConfigFile(options.file, options.cwd);
  let raw: unknown;
  try {
    raw = await importConfigModule(file);
  } catch (error) {
    if (error instanceof TenementError) throw error;
    throw new TenementError(ErrorCodes.CONFIG_LOAD, `cannot load ${file}: ${errorMessage(error)}`, { cause: error });
  }
  return resolveConfig(raw, { path: file, dir: path.dirname(file) }, options.overrides);
}

function formatIssues(issues: z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.map(String).join('.') : '(top level)';
      return `  - ${where}: ${issue.message}`;
    })
    .join('\n');
}

/** Validates a config object; every bad field is reported with its path, not just the first. */
export function resolveConfig(
  raw: unknown,
  source: { path: string | null; dir: string },
  overrides: SettingsOverrides = {},
): ResolvedConfig {
  const withOverrides = applyOverrides(raw, overrides);
  const result = configSchema.safeParse(withOverrides);
  if (!result.success) {
    const where = source.path ?? 'config';
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `invalid config ${where}:\n${formatIssues(result.error.issues)}`);
  }
  const config = result.data;
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
  return { ...base, settings: { ...(base.settings ?? {}), ...defined } };
}
