import net from 'node:net';
import type { UpstreamAddress } from '../types.ts';
import { connectOptions, upstreamKey } from '../upstream-address.ts';
import { sharedOnread } from './read-buffer.ts';

/** Receives what an upstream connection says while an exchange owns it. */
export interface UpstreamOwner {
  /** `chunk` lies in the shared read buffer: valid until this returns (read-buffer.ts). */
  onUpstreamData(chunk: Buffer): void;
  onUpstreamEnd(): void;
  onUpstreamError(error: NodeJS.ErrnoException): void;
  onUpstreamClose(): void;
  onUpstreamConnect(): void;
}

/**
 * One kept-alive connection to an instance; its listeners are installed once and dispatch to the owner. Its
 * reads land in the shared read buffer (net.connect's onread), not in a Readable.
 */
export class UpstreamConnection {
  readonly socket: net.Socket;
  owner: UpstreamOwner | null = null;
  connected = false;
  /** True once it has carried an exchange: a failure before any answer may then be a stale keep-alive. */
  reused = false;
  /** The pool's sweep count when it went idle. */
  idleSince = 0;

  constructor(
    address: UpstreamAddress,
    readonly key: string,
    private readonly pool: UpstreamPool,
  ) {
    const onread = sharedOnread((chunk) => {
      if (this.owner) this.owner.onUpstreamData(chunk);
      // Bytes from an idle connection answer nothing we asked: the connection can no longer be trusted.
      else socket.destroy();
    });
    const socket = (this.socket = net.connect({ ...connectOptions(address), onread }));
    socket.setNoDelay(true);
    socket.on('connect', () => {
      this.connected = true;
      this.owner?.onUpstreamConnect();
    });
    socket.on('end', () => this.owner?.onUpstreamEnd());
    socket.on('error', (error: NodeJS.ErrnoException) => this.owner?.onUpstreamError(error));
    socket.on('close', () => {
      this.pool.forget(this);
      this.owner?.onUpstreamClose();
    });
  }
}

/** How often idle connections are looked at: one closes after `idleMs` (rounded up to SWEEP_MS) to SWEEP_MS more idle. */
const SWEEP_MS = 500;

/**
 * An instance's address is one object for as long as its handle lives: its key is made once, and again when
 * the supervisor pins its socket (the one change an address sees), so each run keeps its own connections.
 */
const keys = new WeakMap<UpstreamAddress, { pinned: string | undefined; key: string }>();
function keyOf(address: UpstreamAddress): string {
  const known = keys.get(address);
  if (known !== undefined && known.pinned === address.pinnedPath) return known.key;
  const key = upstreamKey(address);
  keys.set(address, { pinned: address.pinnedPath, key });
  return key;
}

/**
 * Idle upstream connections per instance address, most recently used first (warm connections stay warm,
 * surplus ones time out). Idle connections close after `idleMs` (at most SWEEP_MS more), before a typical
 * server's own 5 s timeout. One sweep for the pool, not a timer per connection armed and cleared per request.
 */
export class UpstreamPool {
  /** Per address, idle connections oldest first (acquire takes the newest). */
  private readonly idle = new Map<string, UpstreamConnection[]>();
  private sweeper: NodeJS.Timeout | null = null;
  private sweeps = 0;

  constructor(
    private readonly idleMs = 4_000,
    private readonly maxIdlePerAddress = 128,
  ) {}

  acquire(address: UpstreamAddress, owner: UpstreamOwner): UpstreamConnection {
    const key = keyOf(address);
    const list = this.idle.get(key);
    while (list && list.length > 0) {
      const connection = list.pop()!;
      if (connection.socket.destroyed) continue;
      connection.owner = owner;
      connection.reused = true;
      return connection;
    }
    return this.connect(address, owner);
  }

  /** A new connection, bypassing idle ones (after a stale keep-alive failed). */
  connect(address: UpstreamAddress, owner: UpstreamOwner): UpstreamConnection {
    const connection = new UpstreamConnection(address, keyOf(address), this);
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
    connection.idleSince = this.sweeps;
    if (this.sweeper === null) {
      this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
      this.sweeper.unref();
    }
  }

  /** Closes the connections idle for longer than idleMs; stops when none is left. */
  private sweep(): void {
    this.sweeps++;
    const expired = this.sweeps - Math.ceil(this.idleMs / SWEEP_MS);
    for (const [key, list] of this.idle) {
      let old = 0;
      while (old < list.length && list[old]!.idleSince < expired) old++;
      if (old === 0) continue;
      // Out of the list first: their 'close' (forget) then finds nothing to remove.
      const closing = list.splice(0, old);
      if (list.length === 0) this.idle.delete(key);
      for (const connection of closing) connection.socket.destroy();
    }
    if (this.idle.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  }

  forget(connection: UpstreamConnection): void {
    const list = this.idle.get(connection.key);
    if (!list) return;
    const index = list.indexOf(connection);
    if (index !== -1) list.splice(index, 1);
    if (list.length === 0) this.idle.delete(connection.key);
  }

  close(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const list of this.idle.values()) for (const connection of list) connection.socket.destroy();
    this.idle.clear();
  }
}
