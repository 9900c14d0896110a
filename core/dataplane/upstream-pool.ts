import type net from 'node:net';
import type { UpstreamAddress } from '../types.ts';
import { connectUpstream, upstreamKey } from '../upstream-address.ts';

/** Receives what an upstream connection says while an exchange owns it. */
export interface UpstreamOwner {
  onUpstreamData(chunk: Buffer): void;
  onUpstreamEnd(): void;
  onUpstreamError(error: NodeJS.ErrnoException): void;
  onUpstreamClose(): void;
  onUpstreamConnect(): void;
}

/** One kept-alive connection to an instance; its listeners are installed once and dispatch to the owner. */
export class UpstreamConnection {
  owner: UpstreamOwner | null = null;
  connected = false;
  /** True once it has carried an exchange: a failure before any answer may then be a stale keep-alive. */
  reused = false;
  idleTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly socket: net.Socket,
    readonly key: string,
    private readonly pool: UpstreamPool,
  ) {
    socket.setNoDelay(true);
    socket.on('connect', () => {
      this.connected = true;
      this.owner?.onUpstreamConnect();
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.owner) this.owner.onUpstreamData(chunk);
      // Bytes from an idle connection answer nothing we asked: the connection can no longer be trusted.
      else socket.destroy();
    });
    socket.on('end', () => this.owner?.onUpstreamEnd());
    socket.on('error', (error: NodeJS.ErrnoException) => this.owner?.onUpstreamError(error));
    socket.on('close', () => {
      this.pool.forget(this);
      this.owner?.onUpstreamClose();
    });
  }
}

/**
 * Idle upstream connections per instance address, most recently used first (warm connections stay warm,
 * surplus ones time out). Idle connections close after `idleMs`, before a typical server's own 5 s timeout.
 */
export class UpstreamPool {
  private readonly idle = new Map<string, UpstreamConnection[]>();

  constructor(
    private readonly idleMs = 4_000,
    private readonly maxIdlePerAddress = 128,
  ) {}

  acquire(address: UpstreamAddress, owner: UpstreamOwner): UpstreamConnection {
    const key = upstreamKey(address);
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const connection = list.pop()!;
      if (connection.socket.destroyed) continue;
      if (connection.idleTimer) clearTimeout(connection.idleTimer);
      connection.idleTimer = null;
      connection.owner = owner;
      connection.reused = true;
      return connection;
    }
    return this.connect(address, owner);
  }

  /** A new connection, bypassing idle ones (after a stale keep-alive failed). */
  connect(address: UpstreamAddress, owner: UpstreamOwner): UpstreamConnection {
    const connection = new UpstreamConnection(connectUpstream(address), upstreamKey(address), this);
    connection.owner = owner;
    return connection;
  }

  release(connection: UpstreamConnection): void {
    connection.owner = null;
    const socket = connection.socket;
    // Bytes not yet sent (the app answered before reading all of the request) or not yet read (more than the
    // response) would become part of the next exchange on this connection: it is closed instead.
    if (socket.destroyed || !socket.writable || socket.writableLength > 0 || socket.readableLength > 0) return void socket.destroy();
    if (socket.isPaused()) socket.resume();
    let list = this.idle.get(connection.key);
    if (!list) this.idle.set(connection.key, (list = []));
    if (list.length >= this.maxIdlePerAddress) return void socket.destroy();
    list.push(connection);
    connection.idleTimer = setTimeout(() => socket.destroy(), this.idleMs);
    connection.idleTimer.unref();
  }

  forget(connection: UpstreamConnection): void {
    if (connection.idleTimer) clearTimeout(connection.idleTimer);
    const list = this.idle.get(connection.key);
    if (!list) return;
    const index = list.indexOf(connection);
    if (index !== -1) list.splice(index, 1);
    if (list.length === 0) this.idle.delete(connection.key);
  }

  close(): void {
    for (const list of this.idle.values()) for (const connection of list) connection.socket.destroy();
    this.idle.clear();
  }
}
