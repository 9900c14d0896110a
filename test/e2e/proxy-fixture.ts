// What the proxy's pass-through tests share: one raw HTTP exchange with exact, ordered headers (Host included), the
// shapes of the echo app's /echo and /digest answers, and the byte pattern of its /big.
import { createHash } from 'node:crypto';
import http, { type IncomingHttpHeaders } from 'node:http';
import type { TestKernel } from '../../core/test-kernel.ts';

/** The timeout of every test of the proxy pass-through files. */
export const TIMEOUT = 120_000;

export interface Exchange {
  status: number;
  statusMessage: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

/**
 * One request on a fresh connection with exact, ordered raw headers (Host included). The body is sent in one
 * piece with a Content-Length, or as the given pieces with chunked framing (no Content-Length).
 */
export function exchange(
  kernel: TestKernel,
  options: { method?: string; path?: string; headers: string[]; body?: string | Buffer; pieces?: Array<string | Buffer> },
): Promise<Exchange> {
  const base = new URL(kernel.url);
  const headers = [...options.headers];
  if (options.body !== undefined) headers.push('Content-Length', String(Buffer.byteLength(options.body)));
  if (options.pieces !== undefined) headers.push('Transfer-Encoding', 'chunked');
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: base.hostname, port: base.port, method: options.method ?? 'GET', path: options.path ?? '/', headers, agent: false, setHost: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            statusMessage: res.statusMessage ?? '',
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    req.setTimeout(60_000, () => req.destroy(new Error(`${options.method ?? 'GET'} ${options.path ?? '/'} timed out`)));
    req.on('error', reject);
    if (options.pieces) {
      const pieces = [...options.pieces];
      const next = (): void => {
        const piece = pieces.shift();
        if (piece === undefined) return void req.end();
        req.write(piece);
        setTimeout(next, 5);
      };
      next();
    } else {
      req.end(options.body);
    }
  });
}

/** Names (as sent) of a flat rawHeaders array. */
export const names = (raw: readonly string[]): string[] => raw.filter((_, i) => i % 2 === 0);
/** The values of header `name` (any case) in a flat rawHeaders array, in order. */
export const valuesOf = (raw: readonly string[], name: string): string[] =>
  raw.flatMap((value, i) => (i % 2 === 1 && raw[i - 1]!.toLowerCase() === name.toLowerCase() ? [value] : []));

/** What the echo app's /echo answers: the request as it reached the app. */
export interface Echoed {
  instance: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  rawHeaders: string[];
  body: string;
  env: { PORT: string; HOST: string; DATA_DIR: string };
}

/** What the echo app's /digest answers: the body's size and hash and how it was framed. */
export interface Digest {
  method: string;
  bytes: number;
  sha256: string;
  contentLength: string | null;
  transferEncoding: string | null;
}

/** Byte i is i % 251, as the fixture's /big sends it. */
export function pattern(bytes: number): Buffer {
  const buffer = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) buffer[i] = i % 251;
  return buffer;
}

export const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');
