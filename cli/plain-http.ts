/**
 * One HTTP/1.1 request over node:net, its answer read by a strict parser: what the CLI's JSON requests use
 * instead of node:http, whose import and first request cost a quick command like `ten ps` more than the rest of
 * its start-up (bench/cli.ts; docs/install.md "Start-up"). node:net is loaded by Node's own bootstrap already.
 *
 * The answer is read by core/http-answer.ts's strict parser: a malformed or oversized answer, or a connection closed
 * before the answer is whole, is an AnswerError, never a hang or an unbounded buffer. HTTPS and server-sent event
 * streams stay on node:http(s).
 */
import net from 'node:net';
import { AnswerError, AnswerParser, AnswerTimeout } from '../core/http-answer.ts';

export { AnswerError, AnswerParser, AnswerTimeout, MAX_BODY_BYTES, MAX_HEAD_BYTES } from '../core/http-answer.ts';

/** Where to connect: the management API's Unix socket, or a TCP host and port. */
export type Endpoint = { socketPath: string } | { host: string; port: number };

export interface PlainRequest {
  method: string;
  /** Path and query, already encoded (URL.pathname + URL.search). */
  target: string;
  /** Sent as they are (no Host, Connection or Content-Length: this module writes those). */
  headers: Record<string, string>;
  /** The Host header. */
  host: string;
  body?: string;
}

export interface PlainAnswer {
  status: number;
  /** The body as UTF-8. */
  text: string;
}

export interface ExchangeLimits {
  /** Milliseconds without a byte from the server before giving up; 0: none. */
  timeoutMs: number;
  /** Largest body accepted (default MAX_BODY_BYTES). */
  maxBodyBytes?: number;
}

/** The request's bytes; a header value with a line break (a token file's stray newline) is refused, not sent. */
function requestBytes(request: PlainRequest): string {
  const headers: Array<[string, string]> = [['host', request.host], ...Object.entries(request.headers), ['connection', 'close']];
  if (request.body !== undefined) headers.push(['content-length', String(Buffer.byteLength(request.body))]);
  for (const [name, value] of headers) {
    if (/[\r\n\0]/.test(value)) throw new AnswerError(`the ${name} header contains a line break or NUL`);
  }
  return `${request.method} ${request.target} HTTP/1.1\r\n${headers.map(([name, value]) => `${name}: ${value}\r\n`).join('')}\r\n${request.body ?? ''}`;
}

/**
 * Sends `request` on a new connection (closed once the answer is read) and resolves with the answer. Rejects with
 * the connection's own error (ECONNREFUSED, ENOENT, ...), an AnswerError or an AnswerTimeout.
 */
export function exchange(endpoint: Endpoint, request: PlainRequest, limits: ExchangeLimits): Promise<PlainAnswer> {
  return new Promise((resolve, reject) => {
    let bytes: string;
    try {
      bytes = requestBytes(request);
    } catch (error) {
      reject(error as Error);
      return;
    }
    const parser = new AnswerParser(limits.maxBodyBytes);
    const socket = 'socketPath' in endpoint ? net.connect(endpoint.socketPath) : net.connect(endpoint.port, endpoint.host);
    let settled = false;
    const finish = (error: Error | null): void => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (error) reject(error);
      else resolve({ status: parser.status, text: parser.text() });
    };
    if (limits.timeoutMs > 0) socket.setTimeout(limits.timeoutMs, () => finish(new AnswerTimeout()));
    socket.on('data', (chunk: Buffer) => {
      try {
        if (parser.push(chunk)) finish(null);
      } catch (error) {
        finish(error as Error);
      }
    });
    socket.on('end', () => {
      try {
        parser.end();
        finish(null);
      } catch (error) {
        finish(error as Error);
      }
    });
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(new AnswerError('the connection closed before the answer was complete')));
    // Not end(): a server or proxy may take a half-closed connection for a client gone. `connection: close` has
    // the server close it once it has answered.
    socket.write(bytes);
  });
}
