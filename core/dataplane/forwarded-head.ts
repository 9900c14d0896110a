// The heads the fast path forwards: the request head sent upstream and the response head sent to the client,
// each framed exactly as the message it rewrites was framed. Also what the differential corpus re-parses.
import type { Socket } from 'node:net';
import { clientResponseHeaders, upstreamRequestHeaders } from '../headers.ts';
import { serializeHead, type RequestHead, type ResponseHead } from './http1.ts';
import { own } from './read-buffer.ts';

/**
 * The head sent upstream: framing was decided on the client's head, and the forwarded one says exactly that
 * (Content-Length kept whatever Connection lists; a chunked body, forwarded as it came, with its
 * Transfer-Encoding), then hop-by-hop headers dropped and X-Forwarded-* added. With `source`, the buffer the head
 * was parsed from, and no `edit`, its lines that are not hop-by-hop are copied as they came (head.kept) and the
 * same X-Forwarded-* lines follow them, instead of a head rebuilt from strings.
 */
export function forwardedRequestHead(head: RequestHead, remoteAddress: string, edit?: (headers: string[]) => void, source?: Buffer): Buffer {
  if (source !== undefined && head.kept !== null && edit === undefined) return keptRequestHead(head, head.kept, source, remoteAddress);
  const headers = upstreamRequestHeaders(head.raw, { remoteAddress, proto: 'http', host: head.host });
  if (head.chunked) headers.push('Transfer-Encoding', 'chunked');
  edit?.(headers);
  return serializeHead(`${head.method} ${head.target} HTTP/1.1`, headers);
}

/**
 * The response head sent to the client, framed as the upstream framed it (its body is forwarded untouched);
 * `body`, the first body bytes, are appended in the same buffer. With `source`, the buffer the head was parsed
 * from, its lines that are not hop-by-hop are copied as they came (head.kept) instead of rebuilt from strings.
 */
export function forwardedResponseHead(head: ResponseHead, close: boolean, body?: Buffer, source?: Buffer): Buffer {
  if (source !== undefined && head.kept !== null) return keptHead(head.kept, source, close, body);
  const headers = clientResponseHeaders(head.raw);
  if (head.chunked) headers.push('Transfer-Encoding', transferEncoding(head.raw));
  if (close) headers.push('Connection', 'close');
  return serializeHead(`HTTP/1.1 ${head.status} ${head.reason}`, headers, body);
}

const CLOSE = Buffer.from('Connection: close\r\n', 'latin1');

/** As upstreamRequestHeaders then serializeHead would end the head for one without X-Forwarded-* lines of its own. */
function keptRequestHead(head: RequestHead, kept: readonly number[], source: Buffer, remoteAddress: string): Buffer {
  let tail = `X-Forwarded-For: ${remoteAddress}\r\nX-Forwarded-Proto: http\r\n`;
  if (head.host !== undefined) tail += `X-Forwarded-Host: ${head.host}\r\n`;
  if (head.chunked) tail += 'Transfer-Encoding: chunked\r\n';
  tail += '\r\n';
  let size = tail.length;
  for (let i = 0; i < kept.length; i += 2) size += kept[i + 1]! - kept[i]!;
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (let i = 0; i < kept.length; i += 2) at += source.copy(out, at, kept[i]!, kept[i + 1]!);
  out.write(tail, at, 'latin1');
  return out;
}

function keptHead(kept: readonly number[], source: Buffer, close: boolean, body: Buffer | undefined): Buffer {
  let size = 8 + (close ? CLOSE.length : 0) + 2 + (body?.length ?? 0);
  for (let i = 0; i < kept.length; i += 2) size += kept[i + 1]! - kept[i]!;
  const out = Buffer.allocUnsafe(size);
  // 'HTTP/1.1', whichever version the instance spoke; then its status line as it came.
  out[0] = 72;
  out[1] = out[2] = 84;
  out[3] = 80;
  out[4] = 47;
  out[5] = out[7] = 49;
  out[6] = 46;
  let at = 8;
  for (let i = 0; i < kept.length; i += 2) at += source.copy(out, at, kept[i]!, kept[i + 1]!);
  if (close) at += CLOSE.copy(out, at);
  out[at++] = 13;
  out[at++] = 10;
  if (body !== undefined) body.copy(out, at);
  return out;
}

function transferEncoding(raw: readonly string[]): string {
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'transfer-encoding') return raw[i + 1]!;
  return 'chunked';
}

/**
 * Body bytes up to this size leave in the same buffer as the response head (one copy, one plain write); past it,
 * head and body go as a corked writev. Node's writev path (cork, buffered chunks, a write request holding an
 * array) costs more than copying a few KB.
 */
const JOIN_BODY_BYTES = 16 * 1024;

/** Sends the response head and the first body bytes that came with it; false when the socket asks to wait for 'drain'. */
export function writeResponseStart(socket: Socket, head: ResponseHead, close: boolean, body: Buffer, source?: Buffer): boolean {
  if (body.length <= JOIN_BODY_BYTES) return socket.write(forwardedResponseHead(head, close, body, source));
  socket.cork();
  socket.write(forwardedResponseHead(head, close, undefined, source));
  const flushed = socket.write(own(body));
  socket.uncork();
  return flushed;
}
