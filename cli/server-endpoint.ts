/**
 * Where the management API is and which token to send, for cli/client.ts: the flags, the environment, the config
 * found from the cwd up (read without zod when it can be), its data dir's socket and admin.token, and the
 * context file `ten serve` writes (the server a user last started).
 */
import { existsSync, lstatSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { apiSocketPath } from '../core/api/socket-path.ts';
import type { ServerSettings } from '../core/config/server-settings.ts';
import { errorMessage } from '../core/errors.ts';
import type { ClientFlags } from './client.ts';
import { readContexts, type ServerContext } from './context-file.ts';

/** What the client uses of the local config: where its server listens. */
export type LocalConfig = { settings: ServerSettings };

/**
 * The local config, when one is found. One found by walking up that does not validate still gives where its
 * server is (read without validation: `ten reload` while fixing it reaches the server); one that cannot be
 * imported at all is ignored (it may not be ours).
 */
export async function localConfig(explicit: string | undefined): Promise<LocalConfig | null> {
  // Loaded on use: the loader brings the config schema (zod), needed only once a config file is found.
  const { findConfigFile } = await import('../core/config/find.ts');
  let file: string;
  try {
    file = findConfigFile(explicit);
  } catch (error) {
    if (explicit || process.env.TENEMENT_CONFIG) throw error;
    return null;
  }
  if (!explicit && !process.env.TENEMENT_CONFIG) {
    // A config found by walking up gives its endpoint whether or not it validates, and for a valid one the quick
    // reading (no zod, no schema) is the loader's; only a reading that may differ goes through the loader.
    const { readServerSettingsExact } = await import('../core/config/server-settings.ts');
    const read = await readServerSettingsExact(file);
    if (read === null) return null;
    if (read.exact) return { settings: read.settings };
  }
  const { loadConfig, readServerSettings } = await import('../core/config/loader.ts');
  try {
    return await loadConfig({ file });
  } catch (error) {
    if (explicit || process.env.TENEMENT_CONFIG) throw error;
    const settings = await readServerSettings(file);
    return settings ? { settings } : null;
  }
}

/** The address `ten serve` listens on as a URL a local client can dial (wildcards become loopback). */
export function serverFromConfig(config: LocalConfig): string {
  const listen = config.settings.listen;
  const host = listen === '0.0.0.0' || listen === '::' || listen === '' ? '127.0.0.1' : listen.includes(':') ? `[${listen}]` : listen;
  return `http://${host}:${config.settings.port}`;
}

export interface TokenSource {
  token: string | null;
  /** Where the token came from, or where we looked, for the 401 hint. */
  from: string;
}

/** The local server's data dir: TENEMENT_DATA_DIR (it overrides settings.dataDir for `ten serve`), else the config's. */
function localDataDir(config: LocalConfig | null): string | undefined {
  return process.env.TENEMENT_DATA_DIR ? path.resolve(process.env.TENEMENT_DATA_DIR) : config?.settings.dataDir;
}

function isSocket(file: string): boolean {
  try {
    return lstatSync(file).isSocket();
  } catch {
    return false;
  }
}

/**
 * The management API socket of the local server, when it is there: in the known data dir (as the config places
 * it), else in the default data dir under the cwd. Only root (the server's user) can connect to it.
 */
export function localSocket(config: LocalConfig | null): string | null {
  const dataDir = localDataDir(config) ?? path.resolve('tenement-data');
  const file = apiSocketPath(dataDir, config?.settings.api ?? { tcp: true, socket: true });
  return file && isSocket(file) ? file : null;
}

/** The current context (`ten context use`), as `{ name, context }`; null when there is none. */
export function currentContext(): { name: string; context: ServerContext } | null {
  const file = readContexts();
  const context = file.current === null ? undefined : file.contexts.get(file.current);
  return context && file.current !== null ? { name: file.current, context } : null;
}

/**
 * The context `ten serve` recorded for the config found from the cwd up, when its socket is there: where that
 * server listens, read without importing the config (a `.ts` config costs tsx and esbuild, several times node's
 * own start-up). Whatever the file says now, the running server listens where it recorded. Null when there is
 * no such config, no such context, no live socket, or the context file is refused (the full reading decides).
 */
export async function contextOfConfigHere(): Promise<ServerContext | null> {
  const { findConfigFile } = await import('../core/config/find.ts');
  let file: string;
  try {
    file = findConfigFile();
    for (const context of readContexts().contexts.values()) {
      if (context.config === file && context.socket !== null && isSocket(context.socket)) return context;
    }
  } catch {
    // No config here, or a context file we may not read: the reading below says what is wrong, if anything.
  }
  return null;
}

export function findToken(flags: ClientFlags, config: LocalConfig | null, socket: string | null, tokenFile: string | null = null): TokenSource {
  if (flags.token) return { token: flags.token, from: '--token' };
  if (process.env.TENEMENT_TOKEN) return { token: process.env.TENEMENT_TOKEN, from: 'TENEMENT_TOKEN' };
  // TENEMENT_DATA_DIR overrides settings.dataDir for `ten serve`, so the server wrote its token there.
  const dataDir = localDataDir(config) ?? (socket ? path.resolve('tenement-data') : undefined);
  if (!dataDir && !tokenFile) return { token: null, from: 'no local tenement config or TENEMENT_DATA_DIR to find admin.token in' };
  const file = tokenFile ?? path.join(dataDir!, 'admin.token');
  if (!existsSync(file)) return { token: null, from: `${file} does not exist` };
  try {
    const token = readFileSync(file, 'utf8').trim();
    return token ? { token, from: file } : { token: null, from: `${file} is empty` };
  } catch (error) {
    return { token: null, from: `cannot read ${file}: ${errorMessage(error)}` };
  }
}
