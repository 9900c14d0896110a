/**
 * A live stream relayed from an instance's owner (the dashboard's log tail of an instance placed on another node):
 * the owner's Server-Sent Events answer, asked with a signed caller identity (relay.ts), is copied to the client as
 * it comes. Bounded: so many relayed streams at once per node, so many bytes and so long each (then it ends and the
 * browser's EventSource reconnects), and a client that stops reading for long is dropped rather than buffered for.
 */
import type { ServerResponse } from 'node:http';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { Identity } from '../../core/types.ts';
import { API_HEADER, signApiCall } from './relay.ts';

export interface StreamLimits {
  /** Relayed streams open at once on this node. */
  maxStreams: number;
  /** Bytes copied per stream before it is ended. */
  maxBytes: number;
  /** Milliseconds a stream is kept before it is ended. */
  maxMs: number;
  /** Milliseconds to wait for the owner's answer to begin. */
  connectMs: number;
}

export const STREAM_LIMITS: StreamLimits = { maxStreams: 64, maxBytes: 64 * 1024 * 1024, maxMs: 10 * 60_000, connectMs: 15_000 };
/** A client that has not taken what was written in this long is disconnected (the owner's own rule for its streams). */
const DRAIN_MS = 30_000;
const MAX_ERROR_BYTES = 64 * 1024;

export class StreamRelay {
  private readonly open = new Set<AbortController>();

  constructor(
    private readonly secret: string,
    private readonly self: string,
    private readonly limits: StreamLimits = STREAM_LIMITS,
  ) {}

  /**
   * Opens `target` on the node at `advertise`. A 200 event stream is piped into `raw` (the route has hijacked it)
   * (the promise resolves once it began: the copy goes on in the background); any other answer resolves with its
   * status and JSON body, nothing written.
   */
  async relay(to: string, advertise: string, identity: Identity, target: string, raw: ServerResponse, hijack: () => void): Promise<{ status: number; body: unknown } | null> {
    if (this.closed) throw new TenementError(ErrorCodes.SHUTTING_DOWN, 'the server is shutting down', { retryAfter: 1 });
    if (this.open.size >= this.limits.maxStreams) throw new TenementError(ErrorCodes.RATE_LIMITED, 'too many relayed streams open on this node; retry later', { retryAfter: 5 });
    const abort = new AbortController();
    this.open.add(abort);
    const onClose = (): void => abort.abort();
    raw.once('close', onClose);
    const release = (): void => {
      this.open.delete(abort);
      raw.off('close', onClose);
    };
    const connect = setTimeout(() => abort.abort(), this.limits.connectMs);
    let piping = false;
    try {
      let answer: Response;
      try {
        answer = await fetch(new URL(target, advertise), {
          headers: { accept: 'text/event-stream', [API_HEADER]: signApiCall(this.secret, this.self, to, identity, 'GET', target) },
          redirect: 'manual',
          signal: abort.signal,
        });
      } catch (error) {
        throw new TenementError(ErrorCodes.FLEET_UNAVAILABLE, `the owner did not answer: ${String(error)}`, { retryAfter: 1 });
      } finally {
        clearTimeout(connect);
      }
      if (answer.status !== 200 || !answer.body || !(answer.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
        const text = (await answer.text().catch(() => '')).slice(0, MAX_ERROR_BYTES);
        let body: unknown;
        try {
          body = JSON.parse(text) as unknown;
        } catch {
          body = { error: { code: ErrorCodes.UPSTREAM_ERROR, message: `node answered ${answer.status} without JSON` } };
        }
        return { status: answer.status === 200 ? 502 : answer.status, body };
      }
      hijack();
      raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
      piping = true;
      void this.copy(answer.body, raw, abort).finally(release);
      return null;
    } finally {
      if (!piping) release();
    }
  }

  private async copy(body: ReadableStream<Uint8Array>, raw: ServerResponse, abort: AbortController): Promise<void> {
    const deadline = setTimeout(() => abort.abort(), this.limits.maxMs);
    let copied = 0;
    try {
      for await (const chunk of body as AsyncIterable<Uint8Array>) {
        copied += chunk.byteLength;
        if (copied > this.limits.maxBytes || raw.destroyed) break;
        if (!raw.write(chunk) && !(await drained(raw))) break;
      }
    } catch {
      // The owner went away, the client left or the time was up: the stream ends here either way.
    } finally {
      clearTimeout(deadline);
      abort.abort();
      if (!raw.destroyed) raw.end();
    }
  }

  private closed = false;

  /** Ends every relayed stream (the server is stopping). */
  close(): void {
    this.closed = true;
    for (const abort of this.open) abort.abort();
  }

  get size(): number {
    return this.open.size;
  }
}

/** True once `raw` drained; false (and `raw` destroyed) when it did not within DRAIN_MS or closed. */
function drained(raw: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      raw.off('drain', onDrain);
      raw.off('close', onClose);
      if (!ok) raw.destroy();
      resolve(ok);
    };
    const onDrain = (): void => done(true);
    const onClose = (): void => done(false);
    const timer = setTimeout(() => done(false), DRAIN_MS);
    raw.once('drain', onDrain);
    raw.once('close', onClose);
  });
}
