import path from 'node:path';
import { ErrorCodes, TenementError } from './errors.ts';

/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

/**
 * The Unix socket of an instance with `listen: 'socket'`: in its DATA_DIR, because that is the one folder
 * every tier makes writable for the tenant at the same path (the namespace tier binds it back into the
 * sandbox, the sandbox tier bind-mounts it), so the path the app binds is the path the proxy connects to.
 */
export function instanceSocketPath(dataDir: string): string {
  const socketPath = path.resolve(dataDir, 'app.sock');
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new TenementError(
      ErrorCodes.SPAWN_FAILED,
      `listen: 'socket': the socket path ${socketPath} is longer than the ${MAX_SOCKET_PATH_BYTES} bytes a Unix socket path may have; use a shorter settings.dataDir`,
    );
  }
  return socketPath;
}
