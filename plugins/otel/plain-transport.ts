/**
 * The OTLP/HTTP export for a plain `http://` collector without compression (the common case: a collector beside
 * the server), over one kept-alive node:net connection, its answers read by core/http-answer.ts's strict parser.
 *
 * Why not the SDK's transport there: it goes through node:http (a URL parsed, a Readable piped into a
 * ClientRequest, the agent, an IncomingMessage and its listeners) once per export, about every 60 ms under load,
 * so that code never gets hot: perf put it at about 2 µs of the proxy's main thread per traced request, as much as
 * making and writing the request's two spans. Here an export is one corked write of a head made once and the body,
 * and one small answer parsed. What the SDK's transport decides is decided the same way: 2xx is success (its body
 * handed to the encoding's response decoder), 429/502/503/504 and connection failures are retried (retrying(),
 * the SDK's policy and Retry-After), anything else fails with the collector's status and message; answers are
 * bounded at 4 MiB. HTTPS and gzip stay on the SDK's transport (exporter.ts chooses).
 */
import net from 'node:net';
import { OTLPExporterError, type ExportResponse, type IExporterTransport } from '@opentelemetry/otlp-exporter-base';
import { FIELD_VALUE, TOKEN } from '../../core/dataplane/tapped-headers.ts';
import { AnswerParser } from '../../core/http-answer.ts';

/** As the SDK's transport: a larger answer is a failure, not read on. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;
/** An idle connection is closed before the collector would: under the 5 s keep-alive timeout of Node's own server, the shortest common one. */
const IDLE_CLOSE_MS = 4_000;
const RETRYABLE_STATUS: ReadonlySet<number> = new Set([429, 502, 503, 504]);
const RETRYABLE_NETWORK: ReadonlySet<string> = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENOTFOUND', 'ENETUNREACH', 'EHOSTUNREACH']);
/** The SDK's own User-Agent form (its version is not ours to claim). */
const USER_AGENT = 'OTel-OTLP-Exporter-JavaScript (tenement)';

/** Where a plain export goes: the collector's address and its request line and Host header. */
export interface PlainEndpoint {
  host: string;
  port: number;
  /** The request line and the Host header, each line ended. */
  start: string;
}

/** The endpoint for a plain transport, or null when the SDK's transport must carry the export (HTTPS, gzip, credentials in the URL). */
export function plainEndpoint(url: string, compression: string): PlainEndpoint | null {
  const parsed = new URL(url);
  if (parsed.protocol !== 'http:' || compression !== 'none' || parsed.username !== '' || parsed.password !== '') return null;
  const host = parsed.hostname.startsWith('[') ? parsed.hostname.slice(1, -1) : parsed.hostname;
  return { host, port: parsed.port === '' ? 80 : Number(parsed.port), start: `POST ${parsed.pathname}${parsed.search} HTTP/1.1\r\nHost: ${parsed.host}\r\n` };
}

/**
 * The head of every export but its Content-Length: the endpoint's lines, then the configured headers (the
 * plugin's, OTEL_EXPORTER_OTLP_*_HEADERS, Content-Type) and the User-Agent. Throws for a header that cannot be one
 * header line (a stray newline in OTEL_EXPORTER_OTLP_HEADERS): the export fails, nothing is sent.
 */
export function exportHead(endpoint: PlainEndpoint, headers: Record<string, string>, userAgent?: string): string {
  // Keyed by the lowercase name, so the last of a name given twice (any case) wins.
  const given = new Map<string, [name: string, value: string]>();
  for (const [name, value] of Object.entries(headers)) given.set(name.toLowerCase(), [name, value]);
  given.set('user-agent', ['User-Agent', `${userAgent ? `${userAgent} ` : ''}${USER_AGENT}`]);
  // The framing and the connection are this module's to say.
  for (const name of ['host', 'content-length', 'transfer-encoding', 'connection']) given.delete(name);
  let head = endpoint.start;
  for (const [name, value] of given.values()) {
    if (!TOKEN.test(name) || !FIELD_VALUE.test(value)) throw new Error(`OTLP export header ${JSON.stringify(name.slice(0, 80))}: not a header name, or its value has a line break or control character`);
    head += `${name}: ${value}\r\n`;
  }
  return head;
}

/** Retry-After as milliseconds, read as the SDK reads it. */
export function retryAfterMs(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const seconds = Number.parseInt(value, 10);
  if (Number.isInteger(seconds)) return seconds > 0 ? seconds * 1000 : -1;
  const delay = new Date(value).getTime() - Date.now();
  return delay >= 0 ? delay : 0;
}

function answered(parser: AnswerParser): ExportResponse {
  const status = parser.status;
  if (status >= 200 && status <= 299) return { status: 'success', data: parser.bytes() };
  if (RETRYABLE_STATUS.has(status)) return { status: 'retryable', retryInMillis: retryAfterMs(parser.retryAfter) };
  return { status: 'failure', error: new OTLPExporterError(parser.reason, status, parser.text()) };
}

function failed(error: Error): ExportResponse {
  const code = (error as NodeJS.ErrnoException).code;
  return typeof code === 'string' && RETRYABLE_NETWORK.has(code) ? { status: 'retryable', error } : { status: 'failure', error };
}

type Event = { kind: 'data'; chunk: Buffer } | { kind: 'end' } | { kind: 'error'; error: Error } | { kind: 'close' } | { kind: 'timeout' };

/** A connection to the collector; its listeners are set once and hand every event to the export using it. */
class Connection {
  /** The export waiting on this connection's answer; null while it is parked idle. */
  current: ((event: Event) => void) | null = null;
  closed = false;
  readonly socket: net.Socket;

  constructor(endpoint: PlainEndpoint, onGone: (connection: Connection) => void) {
    const socket = net.connect({ host: endpoint.host, port: endpoint.port, noDelay: true });
    this.socket = socket;
    const hand = (event: Event): void => {
      if (event.kind === 'close' || event.kind === 'error' || event.kind === 'end') this.closed = true;
      if (this.current !== null) this.current(event);
      // Anything from an idle connection (bytes nobody asked for, its close) ends it.
      else if (event.kind !== 'timeout') socket.destroy();
      if (this.closed) onGone(this);
    };
    socket.on('data', (chunk: Buffer) => hand({ kind: 'data', chunk }));
    socket.on('end', () => hand({ kind: 'end' }));
    socket.on('error', (error: Error) => hand({ kind: 'error', error }));
    socket.on('close', () => hand({ kind: 'close' }));
    socket.on('timeout', () => hand({ kind: 'timeout' }));
  }
}

export class PlainHttpTransport implements IExporterTransport {
  /** The connection kept between exports (at most one; a second export at once gets one of its own). */
  private idle: Connection | null = null;
  private idleTimer: NodeJS.Timeout | null = null;
  private readonly open = new Set<Connection>();
  private head: string | null = null;

  constructor(
    private readonly endpoint: PlainEndpoint,
    private readonly headers: () => Promise<Record<string, string>>,
    private readonly userAgent?: string,
  ) {}

  async send(data: Uint8Array, timeoutMillis: number): Promise<ExportResponse> {
    let head = this.head;
    if (head === null) {
      try {
        head = this.head = exportHead(this.endpoint, await this.headers(), this.userAgent);
      } catch (error) {
        return { status: 'failure', error: error as Error };
      }
    }
    return this.exchange(head, data, timeoutMillis);
  }

  private exchange(head: string, data: Uint8Array, timeoutMillis: number): Promise<ExportResponse> {
    return new Promise((resolve) => {
      const connection = this.take();
      const socket = connection.socket;
      const parser = new AnswerParser(MAX_ANSWER_BYTES);
      let settled = false;
      const finish = (response: ExportResponse, reusable: boolean): void => {
        if (settled) return;
        settled = true;
        connection.current = null;
        socket.setTimeout(0);
        if (reusable && !connection.closed) this.park(connection);
        else socket.destroy();
        resolve(response);
      };
      connection.current = (event) => {
        switch (event.kind) {
          case 'data':
            try {
              if (parser.push(event.chunk)) finish(answered(parser), parser.keepAlive && parser.trailing === 0);
            } catch (error) {
              finish({ status: 'failure', error: error as Error }, false);
            }
            return;
          case 'end':
            try {
              parser.end();
              finish(answered(parser), false);
            } catch (error) {
              // Closed before the answer was whole: the collector may not have the spans; sent again.
              finish({ status: 'retryable', error: error as Error }, false);
            }
            return;
          case 'error':
            finish(failed(event.error), false);
            return;
          case 'close':
            finish({ status: 'retryable', error: new Error('the collector closed the connection before answering') }, false);
            return;
          case 'timeout':
            finish({ status: 'retryable', error: new Error('Request timed out') }, false);
            return;
        }
      };
      socket.setTimeout(Math.max(1, timeoutMillis));
      socket.cork();
      socket.write(`${head}Content-Length: ${data.length}\r\n\r\n`, 'latin1');
      socket.write(data);
      socket.uncork();
    });
  }

  private take(): Connection {
    const idle = this.idle;
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.idle = null;
    if (idle !== null && !idle.closed) {
      // Parked connections do not hold the process open; one carrying an export does (a flush at shutdown).
      idle.socket.ref();
      return idle;
    }
    const connection = new Connection(this.endpoint, (gone) => {
      this.open.delete(gone);
      if (this.idle === gone) this.idle = null;
    });
    this.open.add(connection);
    return connection;
  }

  private park(connection: Connection): void {
    if (this.idle !== null) {
      connection.socket.destroy();
      return;
    }
    this.idle = connection;
    connection.socket.unref();
    this.idleTimer = setTimeout(() => {
      this.idleTimer = null;
      if (this.idle === connection) {
        this.idle = null;
        connection.socket.destroy();
      }
    }, IDLE_CLOSE_MS);
    this.idleTimer.unref();
  }

  shutdown(): void {
    if (this.idleTimer !== null) clearTimeout(this.idleTimer);
    this.idleTimer = null;
    this.idle = null;
    for (const connection of this.open) connection.socket.destroy();
    this.open.clear();
  }
}

const MAX_ATTEMPTS = 5;
const INITIAL_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 5000;
const BACKOFF_MULTIPLIER = 1.5;
const JITTER = 0.2;

/**
 * Retries a retryable answer as the SDK's RetryingTransport does (not exported by its package): up to five more
 * attempts, 1 s backoff growing 1.5x to at most 5 s with ±20% jitter, or the collector's Retry-After, never past
 * the export's own deadline.
 */
export function retrying(transport: IExporterTransport): IExporterTransport {
  const later = (data: Uint8Array, timeoutMillis: number, inMillis: number): Promise<ExportResponse> =>
    new Promise((resolve, reject) => {
      setTimeout(() => transport.send(data, timeoutMillis).then(resolve, reject), inMillis).unref();
    });
  return {
    async send(data, timeoutMillis) {
      const deadline = Date.now() + timeoutMillis;
      let attempts = MAX_ATTEMPTS;
      let backoff = INITIAL_BACKOFF_MS;
      let result = await transport.send(data, timeoutMillis);
      while (result.status === 'retryable' && attempts > 0) {
        attempts -= 1;
        const jittered = Math.max(Math.min(backoff * (1 + (Math.random() * 2 * JITTER - JITTER)), MAX_BACKOFF_MS), 0);
        backoff *= BACKOFF_MULTIPLIER;
        const wait = result.retryInMillis ?? jittered;
        const remaining = deadline - Date.now();
        if (wait > remaining) return result;
        result = await later(data, remaining, wait);
      }
      return result;
    },
    shutdown: () => transport.shutdown(),
  };
}
