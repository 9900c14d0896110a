import net from 'node:net';
import type { UpstreamAddress } from './types.ts';

/** Where to connect for an instance: its Unix socket when it listens on one, else host:port. */
export function connectOptions(address: UpstreamAddress): net.NetConnectOpts {
  const socket = unixPath(address);
  return socket ? { path: socket } : { host: address.host, port: address.port };
}

/** The Unix socket to connect to (the pinned one once there is one), or null for TCP. */
export function unixPath(address: UpstreamAddress): string | null {
  return address.pinnedPath ?? address.socketPath ?? null;
}

/** Keeps connections of different runs apart: each run's pinned socket is its own. */
export function upstreamKey(address: UpstreamAddress): string {
  return address.pinnedPath ? `unix:${address.pinnedPath}` : describeAddress(address);
}

/** Opens a connection to an instance's listener. */
export function connectUpstream(address: UpstreamAddress): net.Socket {
  return net.connect(connectOptions(address));
}

/** A short name for logs, errors and pool keys: `unix:/path` or `host:port`. */
export function describeAddress(address: UpstreamAddress): string {
  return address.socketPath ? `unix:${address.socketPath}` : `${address.host}:${address.port}`;
}
