import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket, { type DecodedPacket } from 'dns-packet';
import type { Logger } from '../../core/logger.ts';
import { answer, RCODE, type ZoneView } from './zone.ts';

/** Largest query read (EDNS's usual UDP size): a query has one short name, so anything bigger is not one of ours. */
const MAX_QUERY = 1232;
const MIN_QUERY = 12;
/** TCP: connections at once per responder, how long one may stay quiet, and what it may leave unread. */
const MAX_TCP_CONNECTIONS = 64;
const TCP_IDLE_MS = 10_000;
const MAX_TCP_BACKLOG = 64 * 1024;
/** Per source address: a steady rate and a burst; past it queries are dropped (a resolver retries). */
const RATE_PER_SECOND = 1000;
const BURST = 2000;
/** Sources remembered; past it the table starts over (each source gets a full burst again, memory stays bounded). */
const MAX_SOURCES = 1024;

/** Token buckets per source address, in a bounded table. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond = RATE_PER_SECOND,
    private readonly burst = BURST,
  ) {}

  take(source: string, now = performance.now()): boolean {
    let bucket = this.buckets.get(source);
    if (!bucket) {
      if (this.buckets.size >= MAX_SOURCES) this.buckets.clear();
      bucket = { tokens: this.burst, at: now };
      this.buckets.set(source, bucket);
    }
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
    bucket.at = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }
}

export interface ResponderOptions {
  host: string;
  /** 0: any free port (the same for UDP and TCP). */
  port: number;
  /** The zone as the caller at `address` sees it; null when this responder does not serve that caller (REFUSED). */
  view(address: string): ZoneView | null;
  log: Logger;
  /** Counts shared by every responder of the plugin (its metrics), by answer; `dropped` for no answer. */
  counts?: QueryCounts;
}

/** Queries answered, by response code, and dropped (malformed, over the rate, not a query). */
export type QueryCounts = Record<'noerror' | 'formerr' | 'nxdomain' | 'notimp' | 'refused' | 'dropped', number>;

export function queryCounts(): QueryCounts {
  return { noerror: 0, formerr: 0, nxdomain: 0, notimp: 0, refused: 0, dropped: 0 };
}

const RCODE_NAMES: ReadonlyMap<number, keyof QueryCounts> = new Map([
  [RCODE.NOERROR, 'noerror'],
  [RCODE.FORMERR, 'formerr'],
  [RCODE.NXDOMAIN, 'nxdomain'],
  [RCODE.NOTIMP, 'notimp'],
  [RCODE.REFUSED, 'refused'],
]);

/** Counts since start: what the tests and the bench read. */
export interface ResponderStats {
  answered: number;
  dropped: number;
}

/**
 * A DNS responder for the discovery zone on one address, over UDP and TCP (RFC 7766's two-byte length prefix),
 * with dns-packet for the wire format. Every query costs bounded work: a malformed or oversized packet is dropped
 * (a TCP connection sending one is closed), one question per query, a per-source rate, bounded TCP connections.
 */
export class DnsResponder {
  readonly stats: ResponderStats = { answered: 0, dropped: 0 };
  private readonly limiter = new RateLimiter();
  private udp: dgram.Socket | null = null;
  private tcp: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  port = 0;

  private constructor(private readonly options: ResponderOptions) {}

  /**
   * Binds both sockets. A bind that fails (EADDRINUSE: a DNS server of the host on 0.0.0.0:53) is logged with the
   * address and the responder serves on what it could bind; it never throws.
   */
  static async start(options: ResponderOptions): Promise<DnsResponder> {
    const responder = new DnsResponder(options);
    await responder.bind();
    return responder;
  }

  /** Whether it listens on UDP and on TCP. */
  get listening(): { udp: boolean; tcp: boolean } {
    return { udp: this.udp !== null, tcp: this.tcp !== null };
  }

  private async bind(): Promise<void> {
    const { host, log } = this.options;
    // With port 0 the TCP side takes the port UDP got; another program may hold it on TCP: try a few.
    for (let attempt = 0; attempt < 5; attempt++) {
      const udp = await bindUdp(host, this.options.port).catch((error: NodeJS.ErrnoException) => error);
      if (udp instanceof Error) {
        log.warn({ address: `${host}:${this.options.port}`, err: udp.message }, `service discovery cannot listen for DNS on udp ${host}:${this.options.port}: ${udp.code ?? udp.message}`);
      } else {
        this.udp = udp;
        this.port = udp.address().port;
        udp.on('message', (message, remote) => this.onUdp(udp, message, remote));
      }
      const port = this.udp ? this.port : this.options.port;
      const tcp = await listenTcp(host, port, (socket) => this.onTcp(socket)).catch((error: NodeJS.ErrnoException) => error);
      if (!(tcp instanceof Error)) {
        this.tcp = tcp;
        this.port = (tcp.address() as net.AddressInfo).port;
        return;
      }
      if (this.options.port === 0 && this.udp && tcp.code === 'EADDRINUSE') {
        this.udp.close();
        this.udp = null;
        continue;
      }
      log.warn({ address: `${host}:${port}`, err: tcp.message }, `service discovery cannot listen for DNS on tcp ${host}:${port}: ${tcp.code ?? tcp.message}`);
      return;
    }
  }

  /** The encoded answer to one raw query from `source`, or null to drop it. */
  private respond(raw: Buffer, source: string): Buffer | null {
    if (raw.length < MIN_QUERY || raw.length > MAX_QUERY || !this.limiter.take(source)) return this.drop();
    let query: DecodedPacket;
    try {
      query = dnsPacket.decode(raw);
    } catch {
      return this.drop();
    }
    const view = this.options.view(source);
    const packet = view
      ? answer(query, view)
      : query.type === 'query'
        ? { id: query.id ?? 0, type: 'response' as const, flags: RCODE.REFUSED, questions: (query.questions ?? []).slice(0, 1), answers: [] }
        : null;
    if (!packet) return this.drop();
    try {
      const encoded = dnsPacket.encode(packet);
      this.stats.answered += 1;
      const counts = this.options.counts;
      const rcode = RCODE_NAMES.get((packet.flags ?? 0) & 0xf);
      if (counts && rcode) counts[rcode] += 1;
      return encoded;
    } catch {
      // A question dns-packet decodes but cannot encode back (an odd type): not worth an answer.
      return this.drop();
    }
  }

  private drop(): null {
    this.stats.dropped += 1;
    if (this.options.counts) this.options.counts.dropped += 1;
    return null;
  }

  private onUdp(udp: dgram.Socket, message: Buffer, remote: dgram.RemoteInfo): void {
    const out = this.respond(message, remote.address);
    if (out) udp.send(out, remote.port, remote.address, () => undefined);
  }

  private onTcp(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const length = pending.readUInt16BE(0);
        if (length < MIN_QUERY || length > MAX_QUERY) return this.closeBad(socket);
        if (pending.length < 2 + length) return;
        const out = this.respond(pending.subarray(2, 2 + length), socket.remoteAddress ?? '');
        pending = pending.subarray(2 + length);
        if (!out) return this.closeBad(socket);
        const frame = Buffer.alloc(2 + out.length);
        frame.writeUInt16BE(out.length, 0);
        out.copy(frame, 2);
        socket.write(frame);
        // A client that sends queries and never reads the answers is not kept.
        if (socket.writableLength > MAX_TCP_BACKLOG) return this.closeBad(socket);
      }
    });
  }

  private closeBad(socket: net.Socket): void {
    socket.removeAllListeners('data');
    socket.destroy();
  }

  async close(): Promise<void> {
    const udp = this.udp;
    const tcp = this.tcp;
    this.udp = null;
    this.tcp = null;
    for (const socket of this.sockets) socket.destroy();
    await Promise.all([
      udp ? new Promise<void>((resolve) => udp.close(() => resolve())) : undefined,
      tcp ? new Promise<void>((resolve) => tcp.close(() => resolve())) : undefined,
    ]);
  }
}

function bindUdp(host: string, port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket({ type: net.isIPv6(host) ? 'udp6' : 'udp4' });
    socket.once('error', (error) => {
      socket.close();
      reject(error);
    });
    socket.bind({ address: host, port, exclusive: true }, () => {
      socket.removeAllListeners('error');
      // Later errors (an ICMP unreachable for an answer) concern one packet, never the responder.
      socket.on('error', () => undefined);
      resolve(socket);
    });
  });
}

/** A TCP listener on host:port; also what the discovery HTTP listener binds with. */
export function listenTcp(
  host: string,
  port: number,
  onConnection: (socket: net.Socket) => void,
  options: { maxConnections: number; allowHalfOpen: boolean } = { maxConnections: MAX_TCP_CONNECTIONS, allowHalfOpen: false },
): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer({ allowHalfOpen: options.allowHalfOpen, noDelay: true }, onConnection);
    server.maxConnections = options.maxConnections;
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.removeListener('error', reject);
      server.on('error', () => undefined);
      resolve(server);
    });
  });
}
