import net from 'node:net';
import { BoundaryMoves } from './boundary-moves.ts';
import { ClientConnection, type DataPlaneContext } from './client-connection.ts';
import { ownRouter, setConnectionRoute, type ConnectionRoute } from './own-routes.ts';

export type { DataPlaneContext };

/**
 * The listening socket. Each connection starts on the fast path (raw HTTP/1.1 forwarding for tenant
 * traffic) and is handed to node:http for anything else. Half-open connections are allowed so a client
 * that finishes sending still gets its answer.
 */
export function createDataPlane(sharedContext: DataPlaneContext): DataPlane {
  const moves = new BoundaryMoves();
  const context: DataPlaneContext = { ...sharedContext, moves };
  const connections = new Set<ClientConnection>();
  const serve = (socket: net.Socket, connectionContext: DataPlaneContext): void => {
    const connection = new ClientConnection(socket, connectionContext);
    connections.add(connection);
    socket.once('close', () => connections.delete(connection));
  };
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => serve(socket, context));
  return {
    server,
    accept(socket, route) {
      // The node:http path (a handoff) finds the route by the socket; the fast path gets it in its context.
      setConnectionRoute(socket, route);
      serve(socket, { ...context, route: ownRouter(route), moves: undefined });
    },
    get connectionCount() {
      return connections.size;
    },
    closeIdleConnections() {
      for (const connection of connections) if (connection.idle) connection.socket.destroy();
    },
    closeAllConnections() {
      for (const connection of connections) connection.socket.destroy();
    },
    takeIdle(max) {
      const taken: net.Socket[] = [];
      for (const connection of connections) {
        if (taken.length >= max) break;
        // Only the listener's own connections (not a plugin's, routed its own way), between requests, nothing read ahead.
        if (connection.context !== context || !connection.movable) continue;
        connection.release();
        taken.push(connection.socket);
      }
      return taken;
    },
    moveAtBoundary(count, to, withinMs) {
      moves.want(count, to, withinMs);
    },
    cancelMoves() {
      moves.cancel();
    },
  };
}

export interface DataPlane {
  server: net.Server;
  /** Serves a connection a plugin accepted on a listener of its own, routed by `route` instead of the `route` hook. */
  accept(socket: net.Socket, route: ConnectionRoute): void;
  /** Connections it holds now (handed-over ones are no longer its own). */
  readonly connectionCount: number;
  /** Closes kept-alive connections with no request in progress (so a server close does not wait for them). */
  closeIdleConnections(): void;
  closeAllConnections(): void;
  /**
   * Up to `max` kept-alive connections with nothing in progress and nothing read ahead, no longer read here: for
   * another proxy process to serve (proxy.accept 'spill' moves some to a worker it spills to).
   */
  takeIdle(max: number): net.Socket[];
  /**
   * Up to `count` of the listener's kept-alive connections to `to`, each as it finishes a response within
   * `withinMs` (boundary-moves.ts): the busy ones takeIdle never finds. Replaces an earlier want.
   */
  moveAtBoundary(count: number, to: (socket: net.Socket) => void, withinMs: number): void;
  cancelMoves(): void;
}
