import { ChunkedScanner } from './chunked.ts';
import type { RequestHead } from './http1.ts';

/**
 * Where a request's body ends on the client connection: after Content-Length bytes, or at the end of its chunked
 * framing. Whatever follows belongs to the next pipelined request. Shared by the proxied and the in-process
 * exchange, which differ only in what they do with the body's bytes.
 */
export class RequestBodyFraming {
  private left: number;
  private readonly scanner: ChunkedScanner | null;
  private readonly onPayload: ((data: Buffer) => void) | null;
  /** Whether the whole body has been seen (from the start, for a request without one). */
  done: boolean;

  /** `onPayload` receives the body itself: the bytes of a Content-Length body, the decoded data of a chunked one. */
  constructor(head: RequestHead, onPayload: ((data: Buffer) => void) | null = null) {
    this.left = head.chunked ? 0 : Math.max(0, head.contentLength);
    this.scanner = head.chunked ? new ChunkedScanner(onPayload) : null;
    this.onPayload = onPayload;
    this.done = !head.chunked && this.left === 0;
  }

  /** Bytes still expected of a Content-Length body (0 for a chunked one: its length is not known up front). */
  get declaredLeft(): number {
    return this.left;
  }

  /** Broken chunked framing: the connection must be answered 400 and closed. */
  get error(): string | null {
    return this.scanner?.error ?? null;
  }

  /** How many of `bytes` belong to this body (check `error` first, then `done`); the rest is the next request's. */
  measure(bytes: Buffer): number {
    if (this.scanner) {
      const end = this.scanner.scan(bytes);
      if (this.scanner.error) return bytes.length;
      if (end !== -1) this.done = true;
      return end === -1 ? bytes.length : end;
    }
    const cut = Math.min(this.left, bytes.length);
    if (this.onPayload && cut > 0) this.onPayload(cut === bytes.length ? bytes : bytes.subarray(0, cut));
    this.left -= cut;
    if (this.left === 0) this.done = true;
    return cut;
  }
}
