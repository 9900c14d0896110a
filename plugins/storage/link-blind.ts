import type { SpawnSpec } from '../../core/types.ts';

/** sun_path holds 108 bytes including the terminating NUL. */
const MAX_SOCKET_PATH_BYTES = 107;

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * For runtimes that cannot follow DATA_DIR's link to the mount point (`TierTraits.followsDataDirLink` false:
 * runsc, given the link as a bind mount, resolves it on the host side and mounts the image at the link's target
 * inside the sandbox, where DATA_DIR's own path then does not exist, ENOENT for the app).
 * The spec with DATA_DIR moved from the link to the mount point: the data dir the runtime binds, and every
 * mention of the link's path in the environment, the arguments and the socket path (`{instance_dir}` was
 * interpolated into them before the spec reached this hook). Only whole path components are replaced.
 */
export function pointAtMount(spec: SpawnSpec, mountPoint: string): SpawnSpec {
  const link = new RegExp(`${escapeRegExp(spec.dataDir)}(?=/|$|[^A-Za-z0-9._-])`, 'g');
  const swap = (text: string): string => text.replace(link, mountPoint);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(spec.env)) env[name] = swap(value);
  const socketPath = spec.socketPath === undefined ? undefined : swap(spec.socketPath);
  if (socketPath !== undefined && Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new Error(`the socket path ${socketPath} in the storage mount is longer than ${MAX_SOCKET_PATH_BYTES} bytes; use a shorter settings.dataDir`);
  }
  return {
    ...spec,
    dataDir: mountPoint,
    command: swap(spec.command),
    args: spec.args.map(swap),
    env,
    ...(socketPath === undefined ? {} : { socketPath }),
  };
}
