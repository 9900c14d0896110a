import type net from 'node:net';
import type { IncomingHttpHeaders } from 'node:http';
import type { KernelHooks } from '../hooks.ts';
import { badFraming, sendSocketError, toHttpError, type HttpError } from '../http-errors.ts';
import type { Logger } from '../logger.ts';
import type { RequestInfo, RouteTarget } from '../types.ts';
import { Exchange } from './exchange.ts';
import { MAX_HEAD_BYTES, hasBareLf, parseRequestHead, type RequestHead } from './http1.ts';
import type { UpstreamPool } from './upstream-pool.ts';
import type { Router } from './route-cache.ts';
import { isShared, own, readIntoShared, readIntoStream } from './read-buffer.ts';
import type { BoundaryMoves } from './boundary-moves.ts';

const CRLFCRLF = Buffer.from('\r\n\r\n');
/** A kept-alive client connection with no request in progress is closed after this long. */
const IDLE_TIMEOUT_MS = 30_000;
/** Unread bytes a client may send ahead (pipelined requests, early body) before its socket is paused. */
const MAX_STASHED_BYTES = 1 << 20;
/**
 * A client that sent FIN with its request complete may have half-closed (still reading) or closed outright:
 * TCP looks the same until something is written. An interim response is written (every HTTP/1.1 client reads
 * and skips 1xx, RFC 9110 §15.2), and again this long after: a closed client's kernel answers the first with a
 * reset, so the second fails and the exchange is dropped; a half-closed client just gets its answer.
 */
const PROBE = Buffer.from('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
const PROBE_GAP_MS = 50;

/** Whoever owns the connection while a request is in progress: a proxied Exchange or a DirectExchange. */
export interface ClientExchange {
  onClientData(chunk: Buffer): void;
  /** The client sent FIN: a request still incomplete is abandoned; a complete one may be a half-close. */
  onClientEnd(): void;
  abort(): void;
}

export interface DataPlaneContext {
  hooks: KernelHooks;
  pool: UpstreamPool;
  log: Logger;
  hostnameOf(host: string | undefined): string | null;
  /** Gives the connection (with its unread bytes put back) to the node:http server for good. */
  handoff(socket: net.Socket): void;
  /** Routes a request instead of the `route` hook (a cache of it, or a proxy worker's mirror); may answer synchronously. */
  route?: Router;
  /**
   * A proxy worker's way out: takes the connection, with `bytes` (the request it could not serve, then whatever
   * followed) to be read first, to the kernel's process. True when it took it.
   */
  handBack?(socket: net.Socket, bytes: Buffer): boolean;
  /** Connections another proxy process wants, taken at a request boundary (the listener's own connections only). */
  moves?: BoundaryMoves;
}

function headersObject(raw: readonly string[]): IncomingHttpHeaders {
  // Null prototype, as node:http's req.headers: a header named `constructor` or `__proto__` is just a header.
  const headers: Record<string, string> = Object.create(null) as Record<string, string>;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    headers[name] = headers[name] === undefined ? raw[i + 1]! : `${headers[name]}, ${raw[i + 1]}`;
  }
  return headers;
}

/**
 * RequestInfo for the route hook, with the headers object built only if a plugin reads it. A class keeps one
 * shape for every request (an object literal with a getter would not), which the route taps' call sites like.
 */
class FastRequestInfo implements RequestInfo {
  readonly upgrade = false;
  readonly method: string;
  readonly url: string;
  readonly remoteAddress: string;
  private parsedHeaders: IncomingHttpHeaders | undefined;

  constructor(
    private readonly head: RequestHead,
    readonly hostname: string,
    socket: net.Socket,
  ) {
    this.method = head.method;
    this.url = head.target;
    this.remoteAddress = socket.remoteAddress ?? '';
  }

  get headers(): IncomingHttpHeaders {
    return (this.parsedHeaders ??= headersObject(this.head.raw));
  }
}

/**
 * One client connection on the fast path. Requests are read one at a time (a pipelined request waits until
 * the previous response is complete). Whatever the fast path does not handle (management, errors Tenement
 * answers itself, upgrades, HTTP/1.0, unusual framing) is handed with the rest of the connection to the
 * node:http server, which has the complete behaviour.
 */
export class ClientConnection {
  private buffer: Buffer | null = null;
  private exchange: ClientExchange | null = null;
  private routing = false;
  /** The client sent FIN: it sends nothing more (it may still read). */
  clientEnded = false;
  private probeTimer: NodeJS.Timeout | null = null;
  private probed = false;
  /** No longer ours: closed, or handed to node:http. */
  closed = false;

  constructor(
    readonly socket: net.Socket,
    readonly context: DataPlaneContext,
  ) {
    socket.setNoDelay(true);
    // Chunks in the shared read buffer (read-buffer.ts): whatever is kept past onData is copied.
    if (!readIntoShared(socket, this.onData)) socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
    socket.on('timeout', this.onTimeout);
    socket.setTimeout(IDLE_TIMEOUT_MS);
  }

  /** Owned by the fast path with nothing in progress. */
  get idle(): boolean {
    return !this.closed && !this.exchange && !this.routing;
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.exchange) return this.exchange.onClientData(chunk);
    // Refused (400 sent, closing): what follows is not read.
    if (this.closed) return;
    // Parsed in place; what is left when onData returns (a later request, a body waiting for its upstream, a
    // head waiting for its route) is copied out of the shared read buffer.
    if (this.buffer === null) this.buffer = chunk;
    else this.stash(chunk);
    if (!this.routing) this.next();
    if (this.buffer !== null && isShared(this.buffer)) this.buffer = Buffer.from(this.buffer);
  };

  private readonly onEnd = (): void => {
    this.clientEnded = true;
    if (this.exchange) this.exchange.onClientEnd();
    else if (!this.routing) this.socket.end();
  };

  private readonly onError = (): void => {
    this.socket.destroy();
  };

  private readonly onClose = (): void => {
    this.closed = true;
    this.stopProbe();
    this.exchange?.abort();
    this.exchange = null;
  };

  private readonly onTimeout = (): void => {
    if (!this.exchange && !this.routing) this.socket.destroy();
  };

  /**
   * Bytes that belong to a later request (or a body not yet forwardable). Reading is not paused per request
   * (each pause and resume costs the event loop two system calls); only a client that sends far ahead of
   * its answers is paused.
   */
  stash(chunk: Buffer): void {
    this.buffer = this.buffer === null ? own(chunk) : Buffer.concat([this.buffer, chunk]);
    if (this.buffer.length > MAX_STASHED_BYTES) this.socket.pause();
  }

  resumeReading(): void {
    if (this.socket.isPaused()) this.socket.resume();
  }

  /** Idle, nothing read ahead, the client still sending, nothing left to write: safe to move to another process. */
  get movable(): boolean {
    const socket = this.socket;
    return this.idle && this.buffer === null && !this.clientEnded && this.probeTimer === null && !socket.destroyed && socket.writableLength === 0 && !socket.isPaused();
  }

  /** No longer ours (moved to another process): nothing more is read here; the caller closes the socket once sent. */
  release(): void {
    this.closed = true;
    (this.socket as unknown as { _handle?: { readStop?(): number } | null })._handle?.readStop?.();
  }

  /** Bytes received and not yet given to an exchange. */
  get hasStash(): boolean {
    return this.buffer !== null;
  }

  takeBuffer(): Buffer | null {
    const buffer = this.buffer;
    this.buffer = null;
    return buffer;
  }

  private next(): void {
    let buffer = this.buffer;
    if (buffer === null || this.closed) return;
    // Empty lines before a request line are ignored (RFC 9112 §2.2), as llhttp does.
    let skip = 0;
    while (buffer.length >= skip + 2 && buffer[skip] === 13 && buffer[skip + 1] === 10) skip += 2;
    if (skip > 0) {
      buffer = this.buffer = buffer.length > skip ? buffer.subarray(skip) : null;
      if (buffer === null) return;
    }
    const end = buffer.indexOf(CRLFCRLF);
    if (end === -1) {
      // A head delimited by bare LFs never gets its CRLFCRLF: refused now rather than waited on.
      if (hasBareLf(buffer)) return this.reject('bare LF in the request head');
      if (buffer.length > MAX_HEAD_BYTES) this.handoff();
      return;
    }
    const head = parseRequestHead(buffer, end);
    if (typeof head === 'string') return this.reject(head);
    const hostname = head ? this.context.hostnameOf(head.host) : null;
    if (!head || !hostname) return this.handoff();
    // The idle timeout stays armed (activity re-arms it); onTimeout ignores it while a request is in progress.
    this.routing = true;
    const receivedAt = performance.now();
    const context = this.context;
    const routed = context.route
      ? context.route(hostname, () => new FastRequestInfo(head, hostname, this.socket))
      : context.hooks.route.promise(new FastRequestInfo(head, hostname, this.socket));
    if (routed instanceof Promise) {
      routed.then(
        (target) => this.routed(target, head, hostname, end, receivedAt),
        (error: unknown) => {
          this.routing = false;
          context.log.error({ err: String(error) }, 'route hook failed');
          this.failExchange(toHttpError(error));
        },
      );
    } else this.routed(routed, head, hostname, end, receivedAt);
  }

  private routed(target: RouteTarget | undefined, head: RequestHead, hostname: string, end: number, receivedAt: number): void {
    this.routing = false;
    if (this.closed) return;
    if (!target || target.kind !== 'instances') return this.handoff();
    const buffer = this.buffer!;
    // Anything after the head is body or the next request; the exchange takes what is its own.
    this.buffer = buffer.length > end + 4 ? buffer.subarray(end + 4) : null;
    const exchange = new Exchange(this, head, target, hostname, receivedAt, buffer, this.context.handBack ? own(buffer.subarray(0, end + 4)) : null);
    this.exchange = exchange;
    if (this.clientEnded) exchange.onClientEnd();
    exchange.begin(0);
  }

  replaceExchange(previous: ClientExchange, next: ClientExchange): void {
    if (this.exchange === previous) this.exchange = next;
  }

  /**
   * Finds out whether a client that sent FIN (with its request complete) still reads: see PROBE. Only while no
   * response head has gone out (`awaitingHead`): after that, the response's own bytes do the same.
   */
  probe(awaitingHead: () => boolean): void {
    if (this.probed || this.closed) return;
    this.probed = true;
    this.socket.write(PROBE);
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      if (!this.closed && awaitingHead()) this.socket.write(PROBE);
    }, PROBE_GAP_MS);
  }

  private stopProbe(): void {
    if (this.probeTimer) clearTimeout(this.probeTimer);
    this.probeTimer = null;
  }

  /** The exchange finished cleanly: keep the connection for the next request, or close it. */
  exchangeDone(keepOpen: boolean): void {
    this.exchange = null;
    this.stopProbe();
    this.probed = false;
    if (this.closed) return;
    if (!keepOpen) {
      this.closed = true;
      this.socket.end();
      return;
    }
    // A request boundary: another process may want this connection (boundary-moves.ts).
    const moves = this.context.moves;
    if (moves !== undefined && moves.wanted > 0 && this.buffer === null && moves.take(this)) return;
    this.resumeReading();
    if (this.buffer) this.next();
    // A half-closed client's pipelined requests are all answered; then the connection closes.
    if (this.clientEnded && !this.exchange && !this.routing && !this.closed) {
      this.closed = true;
      this.socket.end();
    }
  }

  /** An error answer ends the connection: what is left of the request on it cannot be trusted. */
  failExchange(error: HttpError): void {
    this.exchange = null;
    this.stopProbe();
    if (this.closed) return;
    this.closed = true;
    sendSocketError(this.socket, error);
  }

  /** A request whose framing is malformed or ambiguous: 400, and the connection closes (nothing after it can be trusted). */
  private reject(reason: string): void {
    this.buffer = null;
    this.failExchange(badFraming(reason));
  }

  /**
   * A proxy worker's request its instance refused (the worker's route went stale: stopped, hibernated, swapped):
   * the connection goes to the kernel's process, `request` first, which routes it afresh. False when not in a worker.
   */
  handBack(request: Buffer): boolean {
    const handBack = this.context.handBack;
    if (!handBack || this.closed) return false;
    const bytes = this.buffer ? Buffer.concat([request, this.buffer]) : request;
    this.buffer = null;
    this.exchange = null;
    this.stopProbe();
    this.detach();
    return handBack(this.socket, bytes);
  }

  private detach(): void {
    const socket = this.socket;
    this.closed = true;
    socket.removeListener('data', this.onData);
    socket.removeListener('end', this.onEnd);
    socket.removeListener('error', this.onError);
    socket.removeListener('close', this.onClose);
    socket.removeListener('timeout', this.onTimeout);
    socket.setTimeout(0);
    socket.pause();
    readIntoStream(socket);
  }

  private handoff(): void {
    const socket = this.socket;
    this.detach();
    if (this.buffer) socket.unshift(own(this.buffer));
    this.buffer = null;
    this.context.handoff(socket);
    socket.resume();
  }
}
