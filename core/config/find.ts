/**
 * Where the config file is: `--config`, `TENEMENT_CONFIG`, or the first one found walking up from the cwd. Apart
 * from the loader (which brings zod and the config schema), so a client command run where there is no config
 * (`ten ps` reaching the current context) finds that out without loading them.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../errors.ts';

export const CONFIG_FILE_NAMES = [
  'tenement.config.ts',
  'tenement.config.mts',
  'tenement.config.js',
  'tenement.config.mjs',
  'tenement.config.json',
] as const;

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
