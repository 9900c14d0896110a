/**
 * Kept-alive client connections wanted by another proxy process, taken at their next request boundary.
 *
 * Under proxy.accept 'spill', a worker that starts accepting gets a share of the kernel's connections. Those idle
 * at that instant move at once (DataPlane.takeIdle); one busy through every instant (a front proxy's pool, a load
 * generator: the next request follows each response at once) would never be idle when looked at, and a pool
 * opened before the spill would stay on one core for good. So the rest of the share is taken one by one as each
 * connection finishes a response: nothing left to write, nothing read ahead (the next request, if sent, is still
 * in the kernel's socket buffer and is read by the new owner), the client still sending. Bounded by the share
 * and by a deadline, so a quota nobody fills does not move connections long after the loads changed.
 */
import type net from 'node:net';

/** What a connection offers at its request boundary (ClientConnection). */
export interface MovableConnection {
  readonly socket: net.Socket;
  /** Between requests, nothing read ahead or left to write, the client still sending. */
  readonly movable: boolean;
  /** Stops reading here: the socket is someone else's from now on. */
  release(): void;
}

export class BoundaryMoves {
  /** Connections still wanted (the hot path reads only this: zero almost always). */
  wanted = 0;
  private until = 0;
  private to: ((socket: net.Socket) => void) | null = null;

  /** Up to `count` connections to `to`, each at its next request boundary within `withinMs`; replaces any earlier want. */
  want(count: number, to: (socket: net.Socket) => void, withinMs: number): void {
    if (count <= 0) return this.cancel();
    this.wanted = count;
    this.to = to;
    this.until = performance.now() + withinMs;
  }

  cancel(): void {
    this.wanted = 0;
    this.to = null;
  }

  /** At a request boundary, while `wanted` > 0: whether the connection was taken (it is no longer the caller's). */
  take(connection: MovableConnection): boolean {
    const to = this.to;
    if (to === null || performance.now() > this.until) {
      this.cancel();
      return false;
    }
    if (!connection.movable) return false;
    if (--this.wanted === 0) this.to = null;
    connection.release();
    to(connection.socket);
    return true;
  }
}
