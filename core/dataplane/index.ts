import net from 'node:net';
import { ClientConnection, type DataPlaneContext } from './client-connection.ts';

export type { DataPlaneContext };

/**
 * The listening socket. Each connection starts on the fast path (raw HTTP/1.1 forwarding for tenant
 * traffic) and is handed to node:http for anything else. Half-open connections are allowed so a client
 * that finishes sending still gets its answer.
 */
export function createDataPlane(context: DataPlaneContext): DataPlane {
  const connections = new Set<ClientConnection>();
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    const connection = new ClientConnection(socket, context);
    connections.add(connection);
    socket.once('close', () => connections.delete(connection));
  });
  return {
    server,
    get connectionCount() {
      return connections.size;
    },
    closeIdleConnections() {
      for (const connection of connections) if (connection.idle) connection.socket.destroy();
    },
    closeAllConnections() {
      for (const connection of connections) connection.socket.destroy();
    },
  };
}

export interface DataPlane {
  server: net.Server;
  /** Connections it holds now (handed-over ones are no longer its own). */
  readonly connectionCount: number;
  /** Closes kept-alive connections with no request in progress (so a server close does not wait for them). */
  closeIdleConnections(): void;
  closeAllConnections(): void;
}
