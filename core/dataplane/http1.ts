/**
 * Just enough HTTP/1.1 to proxy the common case quickly: request and response heads parsed from raw bytes,
 * and the facts needed to find where each message's body ends.
 *
 * Framing is decided here, strictly, before any header is rewritten (RFC 9112 §6, RFC 9110 §5.5): a head
 * with a control byte, a bare CR or LF, obs-fold, two Host headers, Content-Length with Transfer-Encoding,
 * a Transfer-Encoding other than `chunked`, or a bad or repeated Content-Length is refused (a string, the
 * reason), never guessed at: a proxy that frames a message one way while the app frames it another lets a
 * client smuggle a request past it. Heads that are well formed but unusual (HTTP/1.0, upgrades, Expect,
 * absolute-form and asterisk-form targets, CONNECT) return null and take the node:http path, which is
 * just as strict (llhttp, plus `nodeRequestProblem` below).
 */
import { METHODS } from 'node:http';
import { HeaderLines, LazyResponseHead, TCHAR, trimOws } from './header-lines.ts';

export { TCHAR, trimOws };

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Request targets are visible ASCII only (no space, no control, no obs-text), as llhttp requires. */
const TARGET = /^[\x21-\x7e]+$/;
const DIGITS = /^\d{1,15}$/;
/** reg-name or IP literal, optional port: anything else in Host is not a host. */
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::\d*)?$/;
const ABSOLUTE = /^https?:\/\//i;
/** Methods llhttp knows; CONNECT has no origin-form target and goes to node:http. */
const FAST_METHODS = new Set(METHODS.filter((m) => m !== 'CONNECT'));

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
  /**
   * What of the head goes upstream as it came: byte ranges [from, to) of the buffer it was parsed from, the
   * request line, then each run of header lines that are not hop-by-hop (CRLFs included); forwarded-head.ts adds
   * X-Forwarded-* and the framing after them. Null when the head has X-Forwarded-* lines of its own (merged) or
   * Connection names other headers to drop: the head is rebuilt from `raw` then.
   */
  kept: number[] | null;
}

export interface ResponseHead {
  status: number;
  reason: string;
  raw: string[];
  /**
   * What of the head goes to the client as it came: byte ranges [from, to) of the buffer it was parsed from, the
   * status line after its version, then each run of header lines that are not hop-by-hop (CRLFs included). Null
   * when Connection names other headers to drop: the head is rebuilt from `raw` then.
   */
  kept: number[] | null;
  contentLength: number;
  chunked: boolean;
  /** The upstream will close (or may not be reused) after this response. */
  close: boolean;
}


function connectionTokens(value: string): string[] {
  const lower = value.toLowerCase();
  // One token, the common case: no split, no callback per token.
  return lower.indexOf(',') === -1 ? [trimOws(lower)] : lower.split(',').map(trimOws);
}

/** Connection may not list these: they frame the message, and a recipient that dropped them would read it differently. */
const FRAMING_NAMES = new Set(['content-length', 'transfer-encoding']);

/** The authority of an absolute-form target, lowercased (`http://a.example:80/x` → `a.example:80`). */
export function absoluteAuthority(target: string): string {
  const rest = target.slice(target.indexOf('//') + 2);
  let end = rest.length;
  for (const stop of ['/', '?', '#']) {
    const at = rest.indexOf(stop);
    if (at !== -1 && at < end) end = at;
  }
  return rest.slice(0, end).toLowerCase();
}

/**
 * False when `buffer[0, end)` holds a control byte other than HTAB, or a CR or LF that is not part of a CRLF:
 * one pass over the head's bytes (a byte loop costs less than a regex with lookarounds on the string).
 */
export function headBytesOk(buffer: Buffer, end: number): boolean {
  for (let i = 0; i < end; i++) {
    const c = buffer[i]!;
    // Visible ASCII and SP in one unsigned comparison: almost every byte of a head.
    if (((c - 32) >>> 0) < 95) continue;
    if (c === 13) {
      if (i + 1 >= end || buffer[i + 1] !== 10) return false;
      i++;
    } else if (c !== 9 && c < 128) return false;
  }
  return true;
}

/** True when `buffer` holds an LF not preceded by CR: a head that is not CRLF-delimited, refused at once. */
export function hasBareLf(buffer: Buffer): boolean {
  for (let i = buffer.indexOf(10); i !== -1; i = buffer.indexOf(10, i + 1)) if (i === 0 || buffer[i - 1] !== 13) return true;
  return false;
}

/**
 * Parses the head in `buffer[0, end)` (end is the index of the blank line's CRLFCRLF). Returns the head, a
 * string (why it is refused: answer 400 and close), or null (well formed, but node:http serves it).
 */
export function parseRequestHead(buffer: Buffer, end: number): RequestHead | string | null {
  if (!headBytesOk(buffer, end)) return 'control character, bare CR or bare LF in the request head';
  const text = buffer.toString('latin1', 0, end);
  const next = text.indexOf('\r\n');
  const requestLine = next === -1 ? text : text.slice(0, next);
  const firstSpace = requestLine.indexOf(' ');
  const lastSpace = requestLine.lastIndexOf(' ');
  if (firstSpace <= 0 || lastSpace === firstSpace) return 'malformed request line';
  const version = requestLine.slice(lastSpace + 1);
  const method = requestLine.slice(0, firstSpace);
  const target = requestLine.slice(firstSpace + 1, lastSpace);
  if (!FAST_METHODS.has(method)) return method === 'CONNECT' ? null : 'unknown method';
  if (!TARGET.test(target)) return 'malformed request target';
  if (version !== 'HTTP/1.1') return version === 'HTTP/1.0' ? null : 'unsupported HTTP version';
  const first = target.charCodeAt(0);
  let handoff = first !== 47; /* not origin-form: `*` or absolute-form, checked below */
  if (handoff && first !== 42 && !ABSOLUTE.test(target)) return 'malformed request target';

  const raw: string[] = [];
  let host: string | undefined;
  let contentLength = -1;
  let chunked = false;
  let transferEncoding = false;
  let close = false;
  // The request line is HTTP/1.1 (checked above): it goes upstream as it came.
  let kept: number[] | null = [0, (next === -1 ? text.length : next) + 2];
  const lines = new HeaderLines(text, next);
  while (lines.more) {
    const refused = lines.read();
    if (refused !== null) return refused;
    const name = lines.name;
    const value = trimOws(lines.rawValue);
    // Only names as long as one this parser or the forwarded head looks at are lowercased.
    const lower = REQUEST_LOWERED_LENGTHS[name.length] === 1 ? name.toLowerCase() : '';
    switch (lower) {
      case '':
        break;
      case 'host':
        if (host !== undefined) return 'more than one Host header';
        if (!HOST.test(value)) return 'malformed Host header';
        host = value;
        break;
      case 'expect':
      case 'upgrade':
        handoff = true;
        break;
      case 'connection': {
        const tokens = connectionTokens(value);
        if (tokens.includes('upgrade')) handoff = true;
        if (tokens.includes('close')) close = true;
        if (kept !== null && tokens.some((token) => token !== '' && !UNLISTABLE.has(token))) kept = null;
        break;
      }
      case 'content-length':
        if (contentLength !== -1) return 'more than one Content-Length header';
        if (lines.hasTab) return 'malformed Content-Length';
        if (!DIGITS.test(value)) return 'malformed Content-Length';
        contentLength = Number(value);
        break;
      case 'transfer-encoding':
        if (transferEncoding) return 'more than one Transfer-Encoding header';
        if (lines.hasTab) return 'Transfer-Encoding other than chunked';
        transferEncoding = true;
        if (value.toLowerCase() !== 'chunked') return 'Transfer-Encoding other than chunked';
        chunked = true;
        break;
      case 'x-forwarded-for':
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
        kept = null;
        break;
    }
    raw.push(name, value);
    // Hop-by-hop lines stay here (Transfer-Encoding is said again by the forwarded head when chunked).
    if (kept !== null && (lower === '' || !REQUEST_HOP_BY_HOP.has(lower))) {
      if (kept[kept.length - 1] === lines.start) kept[kept.length - 1] = lines.end + 2;
      else kept.push(lines.start, lines.end + 2);
    }
  }
  if (chunked && contentLength !== -1) return 'both Content-Length and Transfer-Encoding';
  if (first !== 47 && first !== 42 && host !== undefined && absoluteAuthority(target) !== host.toLowerCase()) {
    return 'absolute-form target names another host than Host';
  }
  if (handoff) return null;
  return { method, target, raw, host, contentLength, chunked, close, kept };
}

/** Hop-by-hop request headers (core/headers.ts HOP_BY_HOP). */
const REQUEST_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
/** Lengths of the names a request head's parse or its kept lines depend on. */
const REQUEST_LOWERED_LENGTHS = new Uint8Array(32);
for (const name of [...REQUEST_HOP_BY_HOP, 'host', 'expect', 'content-length', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host']) REQUEST_LOWERED_LENGTHS[name.length] = 1;

/**
 * What llhttp lets through on the node:http path but the fast path refuses, checked on Node's parsed request
 * before it is routed: the same rules, so a request is framed alike whichever path takes it. Null when fine.
 */
export function nodeRequestProblem(method: string, url: string, rawHeaders: readonly string[]): string | null {
  let host: string | undefined;
  let hosts = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') {
      if (++hosts > 1) return 'more than one Host header';
      host = trimOws(rawHeaders[i + 1]!);
      if (!HOST.test(host)) return 'malformed Host header';
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      if (trimOws(rawHeaders[i + 1]!).toLowerCase() !== 'chunked') return 'Transfer-Encoding other than chunked';
    }
  }
  const first = url.charCodeAt(0);
  if (first === 47) return null;
  if (first === 42) return url === '*' && method === 'OPTIONS' ? null : 'malformed request target';
  if (!ABSOLUTE.test(url)) return 'malformed request target';
  if (host !== undefined && absoluteAuthority(url) !== host.toLowerCase()) return 'absolute-form target names another host than Host';
  return null;
}

/** A response Node's client accepted that the fast path would refuse: Connection listing a framing header. */
export function responseFramingProblem(rawHeaders: readonly string[]): string | null {
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length !== 10 || name.toLowerCase() !== 'connection') continue;
    for (const token of connectionTokens(rawHeaders[i + 1]!)) if (FRAMING_NAMES.has(token)) return `Connection lists ${token}`;
  }
  return null;
}

/**
 * Parses a response head: the head, or a string saying why it cannot be framed unambiguously (then the exchange
 * is a 502, or cut if the response had started, and neither connection is reused).
 */
export function parseResponseHead(buffer: Buffer, end: number): ResponseHead | string {
  if (!headBytesOk(buffer, end)) return 'control character, bare CR or bare LF in the response head';
  const text = buffer.toString('latin1', 0, end);
  const next = text.indexOf('\r\n');
  const statusEnd = next === -1 ? text.length : next;
  const statusLine = text.slice(0, statusEnd);
  const version = statusLine.slice(0, 8);
  if ((version !== 'HTTP/1.1' && version !== 'HTTP/1.0') || statusLine.charCodeAt(8) !== 32) return 'malformed status line';
  const d0 = statusLine.charCodeAt(9) - 48;
  const d1 = statusLine.charCodeAt(10) - 48;
  const d2 = statusLine.charCodeAt(11) - 48;
  if (!(d0 >= 1 && d0 <= 9 && d1 >= 0 && d1 <= 9 && d2 >= 0 && d2 <= 9) || (statusLine.length > 12 && statusLine.charCodeAt(12) !== 32)) {
    return 'malformed status line';
  }
  const status = d0 * 100 + d1 * 10 + d2;
  const reason = statusLine.slice(13);
  let contentLength = -1;
  let chunked = false;
  let transferEncoding = false;
  let close = version === 'HTTP/1.0';
  let kept: number[] | null = [8, statusEnd + 2];
  const lines = new HeaderLines(text, next);
  while (lines.more) {
    const refused = lines.read();
    if (refused !== null) return refused;
    // Only the lines it looks at become strings: the rest are copied as bytes (kept) or read when rebuilt (raw).
    const lower = LOWERED_LENGTHS[lines.nameLength] === 1 ? lines.name.toLowerCase() : '';
    if (lower === 'connection') {
      const tokens = connectionTokens(trimOws(lines.rawValue));
      for (const token of tokens) if (FRAMING_NAMES.has(token)) return `Connection lists ${token}`;
      if (tokens.includes('close')) close = true;
      else if (tokens.includes('keep-alive')) close = false;
      if (kept !== null && tokens.some((token) => token !== '' && !UNLISTABLE.has(token))) kept = null;
    } else if (lower === 'content-length') {
      if (contentLength !== -1) return 'more than one Content-Length header';
      if (lines.hasTab) return 'malformed Content-Length';
      const value = trimOws(lines.rawValue);
      if (!DIGITS.test(value)) return 'malformed Content-Length';
      contentLength = Number(value);
    } else if (lower === 'transfer-encoding') {
      if (transferEncoding) return 'more than one Transfer-Encoding header';
      if (lines.hasTab) return 'Transfer-Encoding with HTAB';
      transferEncoding = true;
      const codings = connectionTokens(trimOws(lines.rawValue));
      // chunked last, once: anything else leaves the body's end to the connection's close, or to guesswork.
      if (codings.at(-1) !== 'chunked' || codings.indexOf('chunked') !== codings.length - 1 || !codings.every((c) => TOKEN.test(c))) {
        return 'Transfer-Encoding does not end in chunked';
      }
      chunked = true;
    }
    // Transfer-Encoding is hop-by-hop, but a kept one always ends in chunked, which the client gets as it came.
    if (kept !== null && !(lower !== 'transfer-encoding' && lower !== '' && RESPONSE_HOP_BY_HOP.has(lower))) {
      if (kept[kept.length - 1] === lines.start) kept[kept.length - 1] = lines.end + 2;
      else kept.push(lines.start, lines.end + 2);
    }
  }
  if (chunked && contentLength !== -1) return 'both Content-Length and Transfer-Encoding';
  return new LazyResponseHead(status, reason, text, next, kept, contentLength, chunked, close);
}

/** Hop-by-hop headers (core/headers.ts HOP_BY_HOP); only names of their lengths (and Content-Length's) are lowercased. */
const RESPONSE_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);
const LOWERED_LENGTHS = new Uint8Array(32);
for (const name of [...RESPONSE_HOP_BY_HOP, 'content-length']) LOWERED_LENGTHS[name.length] = 1;
/** Connection tokens that name no header to drop (core/headers.ts NEVER_LISTED). */
const UNLISTABLE = new Set(['close', 'keep-alive', 'host', 'content-length', 'transfer-encoding']);

/**
 * Body bytes up to this size leave in the same buffer as the response head (one copy, one plain write); past it,
 * head and body go as a corked writev. Node's writev path (cork, buffered chunks, a write request holding an
 * array) costs more than copying a few KB.
 */
export const JOIN_BODY_BYTES = 16 * 1024;

/** Serialises a head; latin1 keeps every byte exactly as it arrived. */
export function serializeHead(firstLine: string, raw: readonly string[], tail?: Uint8Array): Buffer {
  let text = `${firstLine}\r\n`;
  for (let i = 0; i < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
  text += '\r\n';
  if (tail === undefined || tail.length === 0) return Buffer.from(text, 'latin1');
  // Head and the body bytes after it in one buffer: one plain write instead of a corked writev (latin1 is one
  // byte per character, so the head's length is the string's).
  const out = Buffer.allocUnsafe(text.length + tail.length);
  out.write(text, 0, 'latin1');
  out.set(tail, text.length);
  return out;
}

/** True for responses that never have a body, whatever their headers say. */
export function bodilessResponse(method: string, status: number): boolean {
  return method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200);
}
