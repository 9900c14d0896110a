/**
 * Just enough HTTP/1.1 to proxy the common case quickly: request and response heads parsed from raw bytes,
 * and the facts needed to find where each message's body ends. Anything unusual returns null and the request
 * takes the fully featured node:http path instead, so this parser can afford to be strict and small.
 */

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const METHOD = /^[A-Z]{1,20}$/;
const DIGITS = /^\d{1,15}$/;

export const MAX_HEAD_BYTES = 64 * 1024;

export interface RequestHead {
  method: string;
  target: string;
  /** Name/value pairs as received, for rewriting. */
  raw: string[];
  host: string | undefined;
  /** -1 when the request has no Content-Length. */
  contentLength: number;
  chunked: boolean;
  /** The client asked to close the connection after this exchange. */
  close: boolean;
}

export interface ResponseHead {
  status: number;
  reason: string;
  raw: string[];
  contentLength: number;
  chunked: boolean;
  /** The upstream will close (or may not be reused) after this response. */
  close: boolean;
}

function connectionTokens(value: string): string[] {
  return value.toLowerCase().split(',').map((t) => t.trim());
}

/**
 * Parses the head in `buffer[0, end)` (end is the index of the blank line's CRLFCRLF). Returns null for
 * anything the fast path does not handle: other HTTP versions, upgrades, Expect, absolute targets, obsolete
 * line folding, ambiguous framing.
 */
export function parseRequestHead(buffer: Buffer, end: number): RequestHead | null {
  const lines = buffer.toString('latin1', 0, end).split('\r\n');
  const requestLine = lines[0]!;
  const firstSpace = requestLine.indexOf(' ');
  const lastSpace = requestLine.lastIndexOf(' ');
  if (firstSpace <= 0 || lastSpace === firstSpace) return null;
  if (requestLine.slice(lastSpace + 1) !== 'HTTP/1.1') return null;
  const method = requestLine.slice(0, firstSpace);
  const target = requestLine.slice(firstSpace + 1, lastSpace);
  if (!METHOD.test(method) || target.charCodeAt(0) !== 47 /* / */ || target.includes(' ')) return null;

  const raw: string[] = [];
  let host: string | undefined;
  let contentLength = -1;
  let chunked = false;
  let close = false;
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return null;
    const value = line.slice(colon + 1).trim();
    switch (name.length) {
      case 4:
        if (name.toLowerCase() === 'host') {
          if (host !== undefined) return null;
          host = value;
        }
        break;
      case 6:
        if (name.toLowerCase() === 'expect') return null;
        break;
      case 7:
        if (name.toLowerCase() === 'upgrade') return null;
        break;
      case 10:
        if (name.toLowerCase() === 'connection') {
          const tokens = connectionTokens(value);
          if (tokens.includes('upgrade')) return null;
          if (tokens.includes('close')) close = true;
        }
        break;
      case 14:
        if (name.toLowerCase() === 'content-length') {
          if (contentLength !== -1 || !DIGITS.test(value)) return null;
          contentLength = Number(value);
        }
        break;
      case 17:
        if (name.toLowerCase() === 'transfer-encoding') {
          if (chunked || value.toLowerCase() !== 'chunked') return null;
          chunked = true;
        }
        break;
    }
    raw.push(name, value);
  }
  if (chunked && contentLength !== -1) return null;
  return { method, target, raw, host, contentLength, chunked, close };
}

/** Parses a response head; null when it is malformed or its framing is ambiguous (then the exchange is a 502). */
export function parseResponseHead(buffer: Buffer, end: number): ResponseHead | null {
  const lines = buffer.toString('latin1', 0, end).split('\r\n');
  const statusLine = lines[0]!;
  const version = statusLine.slice(0, 8);
  if ((version !== 'HTTP/1.1' && version !== 'HTTP/1.0') || statusLine.charCodeAt(8) !== 32) return null;
  const status = Number(statusLine.slice(9, 12));
  if (!Number.isInteger(status) || status < 100 || status > 999) return null;
  const reason = statusLine.slice(13);
  const raw: string[] = [];
  let contentLength = -1;
  let chunked = false;
  let close = version === 'HTTP/1.0';
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    if (colon <= 0) return null;
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) return null;
    const value = line.slice(colon + 1).trim();
    const lower = name.length === 10 || name.length === 14 || name.length === 17 ? name.toLowerCase() : '';
    if (lower === 'connection') {
      const tokens = connectionTokens(value);
      if (tokens.includes('close')) close = true;
      else if (tokens.includes('keep-alive')) close = false;
    } else if (lower === 'content-length') {
      if (!DIGITS.test(value) || (contentLength !== -1 && contentLength !== Number(value))) return null;
      contentLength = Number(value);
    } else if (lower === 'transfer-encoding') {
      const codings = value.toLowerCase().split(',').map((c) => c.trim());
      if (codings.at(-1) !== 'chunked') return null;
      chunked = true;
    }
    raw.push(name, value);
  }
  if (chunked && contentLength !== -1) return null;
  return { status, reason, raw, contentLength, chunked, close };
}

/** Serialises a head; latin1 keeps every byte exactly as it arrived. */
export function serializeHead(firstLine: string, raw: readonly string[]): Buffer {
  let text = `${firstLine}\r\n`;
  for (let i = 0; i < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
  return Buffer.from(`${text}\r\n`, 'latin1');
}

/** True for responses that never have a body, whatever their headers say. */
export function bodilessResponse(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}
