import http from 'node:http';
import type { UpstreamAddress } from '../../core/types.ts';
import { unixPath } from '../../core/upstream-address.ts';

/** Why a scrape failed, as the `reason` label of the failure counter. */
export type FetchFailure = 'timeout' | 'connect' | 'status' | 'too_large' | 'content_type' | 'parse';

export class ScrapeError extends Error {
  constructor(
    readonly reason: FetchFailure,
    message: string,
  ) {
    super(message);
  }
}

export interface FetchOptions {
  path: string;
  /** The whole exchange, from connecting to the last byte: a tenant that trickles bytes is cut off too. */
  timeoutMs: number;
  maxBytes: number;
  /** Aborted when the server stops: a scrape still waiting on a tenant must not hold the shutdown up. */
  signal?: AbortSignal;
}

/**
 * GETs the tenant's metrics path on a fresh connection to the instance's own listener (the address the proxy
 * uses, as the health check does), never through the proxy: a scrape is not traffic, so it neither wakes a
 * hibernated instance nor keeps a running one from going idle. The body is bounded while it arrives.
 */
export function fetchExposition(address: UpstreamAddress, options: FetchOptions): Promise<Buffer> {
  const socketPath = unixPath(address);
  const target = socketPath ? { socketPath } : { host: address.host, port: address.port };
  return new Promise<Buffer>((resolve, reject) => {
    let settled = false;
    const finish = (error: ScrapeError | null, body?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      request.destroy();
      if (error) reject(error);
      else resolve(body!);
    };
    const request = http.get(
      { ...target, path: options.path, agent: false, headers: { accept: 'text/plain; version=0.0.4', 'accept-encoding': 'identity', host: 'localhost' } },
      (response) => {
        const status = response.statusCode ?? 0;
        if (status < 200 || status > 299) return finish(new ScrapeError('status', `HTTP ${status}`));
        const type = response.headers['content-type'];
        if (type !== undefined && !/^text\/plain\s*(;|$)/i.test(type)) {
          return finish(new ScrapeError('content_type', `content-type ${JSON.stringify(type.slice(0, 80))} is not text/plain`));
        }
        const encoding = response.headers['content-encoding'];
        if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
          return finish(new ScrapeError('content_type', `content-encoding ${JSON.stringify(encoding.slice(0, 40))} was not asked for`));
        }
        const declared = Number(response.headers['content-length'] ?? 0);
        if (declared > options.maxBytes) return finish(new ScrapeError('too_large', `body of ${declared} bytes, over ${options.maxBytes}`));
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > options.maxBytes) return finish(new ScrapeError('too_large', `body over ${options.maxBytes} bytes`));
          chunks.push(chunk);
        });
        response.once('end', () => finish(null, Buffer.concat(chunks, size)));
        response.once('error', (error) => finish(new ScrapeError('connect', error.message)));
        response.once('close', () => finish(new ScrapeError('connect', 'connection closed before the body ended')));
      },
    );
    const timer = setTimeout(() => finish(new ScrapeError('timeout', `no complete answer within ${options.timeoutMs}ms`)), options.timeoutMs);
    const abort = (): void => finish(new ScrapeError('connect', 'the server is stopping'));
    if (options.signal?.aborted) abort();
    options.signal?.addEventListener('abort', abort, { once: true });
    request.once('close', () => options.signal?.removeEventListener('abort', abort));
    request.once('error', (error) => finish(new ScrapeError('connect', error.message)));
  });
}
