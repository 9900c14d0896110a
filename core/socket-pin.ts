import { closeSync, fstatSync, openSync, statSync, constants } from 'node:fs';
import { ErrorCodes, TenementError } from './errors.ts';

/** O_PATH from Linux's asm-generic fcntl.h (x86, arm, arm64, riscv); Node does not export it. */
const O_PATH = 0o10000000;

export interface SocketPin {
  /** `/proc/self/fd/N`: connecting there reaches the pinned socket, whatever now sits at the original path. */
  path: string;
  close(): void;
}

/**
 * Pins an instance's Unix socket once it is ready: the socket file lives in the tenant's DATA_DIR, so the tenant
 * could later swap it for a symlink to some other socket of the host (Tenement connects as its own user, often
 * root). The file is opened with O_PATH | O_NOFOLLOW (a symlink fails), must be a socket owned by the owner of
 * `dataDir` (a hard link to a foreign socket has its owner), and from then on the proxy connects through
 * /proc/self/fd/N, which reaches that inode even after a rename or a replacement.
 */
export function pinSocket(socketPath: string, dataDir: string): SocketPin {
  let fd: number;
  try {
    fd = openSync(socketPath, O_PATH | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ELOOP' ? 'it is a symbolic link' : (error as Error).message;
    throw new TenementError(ErrorCodes.SPAWN_FAILED, `socket ${socketPath} cannot be used: ${why}`, { cause: error });
  }
  try {
    const socket = fstatSync(fd);
    if (!socket.isSocket()) throw new Error('it is not a socket');
    const owner = statSync(dataDir).uid;
    if (socket.uid !== owner) throw new Error(`it belongs to uid ${socket.uid}, not to the owner of DATA_DIR (uid ${owner})`);
  } catch (error) {
    closeSync(fd);
    throw new TenementError(ErrorCodes.SPAWN_FAILED, `socket ${socketPath} cannot be used: ${(error as Error).message}`, { cause: error });
  }
  let open = true;
  return {
    path: `/proc/self/fd/${fd}`,
    close() {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}
