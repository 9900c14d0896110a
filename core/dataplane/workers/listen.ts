/**
 * How proxy workers get their listening socket. On Node >= 22.12 (23.1 on the 23 line) `reusePort` is there: the
 * kernel's process and each worker bind a socket of their own to the same address with SO_REUSEPORT, and the OS
 * spreads new connections over them (no process accepts for another, no thundering herd on one accept queue).
 * Older Node (20, what the project runs on) passes the kernel's one listening handle to every worker over IPC, as
 * the cluster module does: each accepts from the same queue. A worker whose own bind fails (a platform without
 * SO_REUSEPORT) says so and is given the shared handle instead.
 *
 * What SO_REUSEPORT changes (docs/architecture.md, Proxy workers): only processes of the same effective uid can
 * join the port (Linux), which is Tenement's own; a process whose socket closes drops the connections still in
 * its own accept queue, where a shared queue would have left them to the others.
 */
import type net from 'node:net';

/** Node's listen options with `reusePort` (Node >= 22.12; the project's @types/node is 20's). */
export type ReusePortListenOptions = net.ListenOptions & { reusePort?: boolean };

/** Where a worker binds its own socket. */
export interface OwnSocket {
  port: number;
  host: string;
}

/** The `listen` message: with `own`, bind a socket of one's own there; with `park`, accept nothing yet (spill.ts); else use the handle sent with it. */
export interface ListenMessage {
  t: 'listen';
  own?: OwnSocket;
  park?: boolean;
}

/** A worker's own bind failed: it asks for the shared handle. */
export interface ListenFailed {
  t: 'listen-failed';
  reason: string;
}

const REUSE_PORT_PLATFORMS: ReadonlySet<string> = new Set(['linux', 'freebsd', 'sunos', 'aix']);

/** Whether this Node on this platform can bind with `reusePort` (added in 23.1.0 and 22.12.0). */
export function reusePortSupported(version: string = process.versions.node, platform: string = process.platform): boolean {
  if (!REUSE_PORT_PLATFORMS.has(platform)) return false;
  const [major = 0, minor = 0] = version.split('.').map((part) => Number.parseInt(part, 10));
  if (major === 22) return minor >= 12;
  if (major === 23) return minor >= 1;
  return major > 23;
}

/** Binds `server` to `at` with SO_REUSEPORT; `ready` once listening, `failed` with the reason otherwise. */
export function listenOwn(server: net.Server, at: OwnSocket, ready: () => void, failed: (reason: string) => void): void {
  const onError = (error: Error): void => {
    server.removeListener('listening', onListening);
    failed(error.message);
  };
  const onListening = (): void => {
    server.removeListener('error', onError);
    ready();
  };
  server.once('error', onError);
  server.once('listening', onListening);
  const options: ReusePortListenOptions = { port: at.port, host: at.host, reusePort: true };
  server.listen(options);
}
