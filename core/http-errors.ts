import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import { ErrorCodes, isTenementError, errorMessage, statusOf, type ErrorCode } from './errors.ts';

export interface HttpError {
  status: number;
  code: ErrorCode;
  message: string;
  retryAfter?: number;
  /** Where the error came from (a plugin's tap): for logs and the management API, never sent on the edge. */
  plugin?: string;
  hook?: string;
}

/** An answer with its code's own status (core/errors.ts). */
export function httpError(code: ErrorCode, message: string, retryAfter?: number): HttpError {
  const out: HttpError = { status: statusOf(code), code, message };
  if (retryAfter !== undefined) out.retryAfter = retryAfter;
  return out;
}

/** The codes of the client errors a framework (Fastify) reports by status alone; any other 4xx is a plain 400. */
const CLIENT_STATUS_CODES: ReadonlyMap<number, ErrorCode> = new Map([
  [404, ErrorCodes.NOT_FOUND],
  [405, ErrorCodes.METHOD_NOT_ALLOWED],
  [408, ErrorCodes.REQUEST_TIMEOUT],
  [413, ErrorCodes.BODY_TOO_LARGE],
  [415, ErrorCodes.UNSUPPORTED_MEDIA_TYPE],
  [431, ErrorCodes.HEADERS_TOO_LARGE],
]);

/** A framework's error that carries only an HTTP status: its code, with that code's own status. */
export function fromStatus(status: number, message: string): HttpError {
  if (status >= 500) return httpError(ErrorCodes.HOOK_FAILED, message);
  return httpError(CLIENT_STATUS_CODES.get(status) ?? ErrorCodes.BAD_REQUEST, message);
}

export function toHttpError(error: unknown): HttpError {
  if (isTenementError(error)) {
    const out: HttpError = { status: error.status, code: error.code, message: error.message };
    if (error.retryAfter !== undefined) out.retryAfter = error.retryAfter;
    if (error.plugin !== undefined) out.plugin = error.plugin;
    if (error.hook !== undefined) out.hook = error.hook;
    return out;
  }
  return httpError(ErrorCodes.HOOK_FAILED, errorMessage(error));
}

/** Every error Tenement itself answers is JSON `{ "error": { "code", "message" } }`. */
export function sendError(res: ServerResponse, error: HttpError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code: error.code, message: error.message } });
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  if (error.retryAfter !== undefined) headers['retry-after'] = error.retryAfter;
  res.writeHead(error.status, headers);
  res.end(body);
}

/** A redirect (fleet redirect mode): the status, Location, and a small JSON body saying why. */
export function sendRedirect(res: ServerResponse, redirect: { status: number; location: string; message: string }): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ redirect: { location: redirect.location, message: redirect.message } });
  res.writeHead(redirect.status, {
    location: redirect.location,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

/** The same error on a raw socket, for upgrade requests that never became an HTTP response object. */
export function sendSocketError(socket: Duplex, error: HttpError): void {
  if (!socket.writable) return void socket.destroy();
  const body = JSON.stringify({ error: { code: error.code, message: error.message } });
  const lines = [
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? 'Error'}`,
    'Content-Type: application/json; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
  ];
  if (error.retryAfter !== undefined) lines.push(`Retry-After: ${error.retryAfter}`);
  socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
}

/** A request whose framing is malformed or ambiguous: 400, and the connection closes (nothing after it can be trusted). */
export function badFraming(reason: string): HttpError {
  return httpError(ErrorCodes.BAD_REQUEST_FRAMING, `malformed request: ${reason}`);
}

/** How long a refused connection may take to read its error before it is destroyed (the client may still be sending). */
const LINGER_MS = 2_000;

/**
 * node:http's `clientError`: llhttp refused what the client sent (control bytes, bare LF, obs-fold, CL with TE,
 * a bad chunk...), or its headers were too large or too slow. A coded answer instead of Node's bare one, unless
 * a response is already on the wire (then the connection is only closed), and the connection closes.
 */
export function answerClientError(error: NodeJS.ErrnoException & { reason?: string }, socket: Duplex): void {
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  // A client gone mid-request (reset, or FIN before its request was complete) gets nothing: it is not reading.
  if (error.code === 'ECONNRESET' || error.code === 'HPE_INVALID_EOF_STATE' || !socket.writable || inFlight?.headersSent) {
    return void socket.destroy();
  }
  const answer: HttpError =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? httpError(ErrorCodes.HEADERS_TOO_LARGE, 'request header fields too large')
      : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? httpError(ErrorCodes.REQUEST_TIMEOUT, 'request headers not received in time')
        : badFraming(error.reason ?? error.code ?? 'unparseable request');
  sendSocketError(socket, answer);
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}
