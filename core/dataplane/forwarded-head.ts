// The heads the fast path forwards: the request head sent upstream and the response head sent to the client,
// each framed exactly as the message it rewrites was framed. Also what the differential corpus re-parses.
import type { Socket } from 'node:net';
import { clientResponseHeaders, upstreamRequestHeaders } from '../headers.ts';
import type { KernelHooks } from '../hooks.ts';
import type { Instance } from '../instance.ts';
import { JOIN_BODY_BYTES, serializeHead, type RequestHead, type ResponseHead } from './http1.ts';
import { editUpstreamHeaders, headGoesAsReceived, type RequestContext } from './policy.ts';
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

/** As upstreamRequestHeaders then serializeHead would end the head (but its blank line) for one without X-Forwarded-* lines of its own. */
function forwardedLines(head: RequestHead, remoteAddress: string): string {
  let tail = `X-Forwarded-For: ${remoteAddress}\r\nX-Forwarded-Proto: http\r\n`;
  if (head.host !== undefined) tail += `X-Forwarded-Host: ${head.host}\r\n`;
  if (head.chunked) tail += 'Transfer-Encoding: chunked\r\n';
  return tail;
}

function keptLength(kept: readonly number[]): number {
  let size = 0;
  for (let i = 0; i < kept.length; i += 2) size += kept[i + 1]! - kept[i]!;
  return size;
}

function keptRequestHead(head: RequestHead, kept: readonly number[], source: Buffer, remoteAddress: string): Buffer {
  const tail = `${forwardedLines(head, remoteAddress)}\r\n`;
  const out = Buffer.allocUnsafe(keptLength(kept) + tail.length);
  let at = 0;
  for (let i = 0; i < kept.length; i += 2) at += source.copy(out, at, kept[i]!, kept[i + 1]!);
  out.write(tail, at, 'latin1');
  return out;
}

type Latin1Writer = Buffer & { latin1Write?: (text: string, offset: number, length: number) => number };

/** Buffer's own latin1 writer, where Node has it, without write()'s argument checks and dispatch (about 3x faster for a head's few lines). */
const latin1Write: (out: Buffer, text: string, offset: number) => void =
  typeof (Buffer.prototype as Latin1Writer).latin1Write === 'function'
    ? (out, text, offset) => (out as Latin1Writer).latin1Write!(text, offset, out.length - offset)
    : (out, text, offset) => out.write(text, offset, 'latin1');

/** Bytes left after a received head for the lines taps add (a traceparent line takes 70). */
const ADDED_ROOM = 128;

/**
 * A request head as received (its kept lines), copied while its bytes are there, for `upstreamHeaders` taps that
 * only add lines (policy.ts headGoesAsReceived): per attempt, the X-Forwarded-* lines and the taps' are written
 * after it in one go, into room left for them (once; a later attempt gets a buffer of its own).
 */
export class ReceivedHead {
  private used = false;
  constructor(
    private readonly bytes: Buffer,
    private readonly keptLength: number,
    private readonly tail: string,
  ) {}

  /** The head with the lines `add` pushes (name, value, ...) after the X-Forwarded-* ones. */
  with(add: (lines: string[]) => void): Buffer {
    const lines: string[] = [];
    add(lines);
    let text = this.tail;
    for (let i = 0; i + 1 < lines.length; i += 2) text += `${lines[i]}: ${lines[i + 1]}\r\n`;
    text += '\r\n';
    const size = this.keptLength + text.length;
    let out = this.bytes;
    if (this.used || size > out.length) {
      out = Buffer.allocUnsafe(size);
      this.bytes.copy(out, 0, 0, this.keptLength);
    }
    this.used = true;
    latin1Write(out, text, this.keptLength);
    return size === out.length ? out : out.subarray(0, size);
  }
}

/**
 * The request head before any instance is picked, made while `source` (the buffer it was parsed from, valid
 * during this call only) is there: without `upstreamHeaders` taps, the head to send (kept lines); with taps that
 * only add lines, a ReceivedHead; null when a tap may edit it, or its lines cannot be kept (rebuilt per attempt).
 */
export function receivedRequestHead(hooks: KernelHooks, head: RequestHead, remoteAddress: string, source: Buffer): Buffer | ReceivedHead | null {
  if (hooks.upstreamHeaders.taps.length === 0) return forwardedRequestHead(head, remoteAddress, undefined, source);
  const kept = head.kept;
  if (kept === null || !headGoesAsReceived(hooks, head.raw)) return null;
  const size = keptLength(kept);
  const tail = forwardedLines(head, remoteAddress);
  const bytes = Buffer.allocUnsafe(size + tail.length + ADDED_ROOM);
  let at = 0;
  for (let i = 0; i < kept.length; i += 2) at += source.copy(bytes, at, kept[i]!, kept[i + 1]!);
  return new ReceivedHead(bytes, size, tail);
}

/** The head for one attempt at `instance` when receivedRequestHead gave no head to send as it is. */
export function tappedRequestHead(hooks: KernelHooks, ctx: RequestContext, instance: Instance, head: RequestHead, remoteAddress: string, received: ReceivedHead | null): Buffer {
  // Closures passed, not named: tsx (esbuild's keepNames) gives a named one its name with defineProperty each time it is made.
  if (received !== null) return received.with((lines) => editUpstreamHeaders(hooks, ctx, instance, lines));
  if (hooks.upstreamHeaders.taps.length === 0) return forwardedRequestHead(head, remoteAddress);
  return forwardedRequestHead(head, remoteAddress, (headers) => editUpstreamHeaders(hooks, ctx, instance, headers));
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


/** Sends the response head and the first body bytes that came with it; false when the socket asks to wait for 'drain'. */
export function writeResponseStart(socket: Socket, head: ResponseHead, close: boolean, body: Buffer, source?: Buffer): boolean {
  if (body.length <= JOIN_BODY_BYTES) return socket.write(forwardedResponseHead(head, close, body, source));
  socket.cork();
  socket.write(forwardedResponseHead(head, close, undefined, source));
  const flushed = socket.write(own(body));
  socket.uncork();
  return flushed;
}
