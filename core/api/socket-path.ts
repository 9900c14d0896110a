import path from 'node:path';

/** The management API socket's default name in the data dir. */
export const API_SOCKET_FILE = 'api.sock';

export interface ApiSettings {
  tcp: boolean;
  socket: boolean | string;
}

/**
 * Where the management API socket lives: `{dataDir}/api.sock`, a path relative to dataDir, or null for none.
 * Its own module, with nothing but `path`, because `ten` resolves it on every command (cli/client.ts).
 */
export function apiSocketPath(dataDir: string, api: ApiSettings): string | null {
  if (api.socket === false) return null;
  return path.resolve(dataDir, api.socket === true ? API_SOCKET_FILE : api.socket);
}
