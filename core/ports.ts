import { readFileSync } from 'node:fs';
import net from 'node:net';
import { ErrorCodes, TenementError, errorMessage } from './errors.ts';

/** Bind errors that say something about the port; any other (EMFILE, ENOMEM...) is about this host. */
const PORT_TAKEN: ReadonlySet<string> = new Set(['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL']);

function isFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.unref();
    probe.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code !== undefined && PORT_TAKEN.has(error.code)) resolve(false);
      else reject(error);
    });
    probe.listen({ port, host, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/**
 * Hands out instance ports from a range, round-robin so a just-released port (whose old connections may still
 * linger in TIME_WAIT or in a keep-alive pool) is the last to be reused. Each port is probed with a real bind,
 * so a port taken by something outside Tenement is skipped rather than handed to a tenant.
 */
export class PortAllocator {
  private readonly taken = new Set<number>();
  private next: number;

  constructor(
    private readonly from: number,
    private readonly to: number,
    private readonly host = '127.0.0.1',
  ) {
    // A random starting point keeps two servers (or parallel test kernels) on one host from racing for the
    // same ports: a probe cannot reserve a port for a process that has not bound it yet.
    this.next = from + Math.floor(Math.random() * (to - from + 1));
  }

  /**
   * The next port not handed out; `probe: false` skips the bind that checks no other program holds it, for an
   * instance that survives a taken port (TierTraits.probesPort).
   */
  async allocate(options: { probe?: boolean } = {}): Promise<number> {
    const span = this.to - this.from + 1;
    for (let tried = 0; tried < span; tried++) {
      const port = this.next;
      this.next = port >= this.to ? this.from : port + 1;
      if (this.taken.has(port)) continue;
      this.taken.add(port);
      if (options.probe === false) return port;
      let free: boolean;
      try {
        free = await isFree(port, this.host);
      } catch (error) {
        // Out of descriptors or memory: every other port would fail the same way, and "no free port" would
        // send the operator looking in the wrong place.
        this.taken.delete(port);
        const code = (error as NodeJS.ErrnoException).code ?? 'error';
        throw new TenementError(ErrorCodes.SPAWN_FAILED, `cannot probe a port for the instance: ${code} (${errorMessage(error)})`, {
          retryAfter: 5,
          cause: error,
        });
      }
      if (free) return port;
      this.taken.delete(port);
    }
    throw new TenementError(ErrorCodes.NO_PORT, `no free port left in ${this.from}-${this.to}`, { retryAfter: 5 });
  }

  release(port: number | null): void {
    if (port !== null) this.taken.delete(port);
  }
}

/**
 * The part of [from, to] the kernel also hands out as ephemeral ports for outgoing connections
 * (net.ipv4.ip_local_port_range), or null. An instance port in that range can be taken by any client socket
 * between Tenement's probe and the app's bind (seconds for a booting microVM), so the default range avoids it.
 */
export function ephemeralOverlap(from: number, to: number): { from: number; to: number } | null {
  let text: string;
  try {
    text = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
  } catch {
    return null;
  }
  const [low, high] = text.trim().split(/\s+/).map(Number);
  if (low === undefined || high === undefined || Number.isNaN(low) || Number.isNaN(high)) return null;
  const start = Math.max(from, low);
  const end = Math.min(to, high);
  return start <= end ? { from: start, to: end } : null;
}
