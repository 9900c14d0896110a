import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { STATUS_CODES } from 'node:http';
import { ErrorCodes, isTenementError, errorMessage } from './errors.ts';

export interface HttpError {
  status: number;
  code: string;
  message: string;
  retryAfter?: number;
}

export function toHttpError(error: unknown): HttpError {
  if (isTenementError(error)) {
    const out: HttpError = { status: error.status, code: error.code, message: error.message };
    if (error.retryAfter !== undefined) out.retryAfter = error.retryAfter;
    return out;
  }
  return { status: 500, code: ErrorCodes.HOOK_FAILED, message: errorMessage(error) };
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
