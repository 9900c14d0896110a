import { ChunkedScanner } from './chunked.ts';
import { bodilessResponse, type ResponseHead } from './http1.ts';

/**
 * Where a response's body ends on the upstream connection: nowhere for a bodiless one (HEAD, 1xx, 204, 304),
 * after Content-Length bytes, at the end of its chunked framing, or when the upstream closes. The response-side
 * twin of RequestBodyFraming: what follows the end answers nothing that was asked.
 */
export class ResponseBodyFraming {
  private left = 0;
  private readonly scanner: ChunkedScanner | null = null;
  /** Neither length nor chunks: the body runs until the upstream closes (that connection is never reused). */
  readonly untilClose: boolean = false;
  /** Whether the whole body has been seen (from the start, for a bodiless response or an empty one). */
  done = false;

  constructor(method: string, head: ResponseHead) {
    if (bodilessResponse(method, head.status)) this.done = true;
    else if (head.chunked) this.scanner = new ChunkedScanner();
    else if (head.contentLength >= 0) {
      this.left = head.contentLength;
      this.done = head.contentLength === 0;
    } else this.untilClose = true;
  }

  /** Broken chunked framing from the upstream. */
  get error(): string | null {
    return this.scanner?.error ?? null;
  }

  /** How many of `bytes` belong to this body (check `error` first, then `done`). */
  measure(bytes: Buffer): number {
    if (this.scanner) {
      const end = this.scanner.scan(bytes);
      if (this.scanner.error) return bytes.length;
      if (end !== -1) this.done = true;
      return end === -1 ? bytes.length : end;
    }
    if (this.untilClose) return bytes.length;
    const cut = Math.min(this.left, bytes.length);
    this.left -= cut;
    if (this.left === 0) this.done = true;
    return cut;
  }

  /** The upstream closed: that ends a body framed by the close, and no other. */
  closed(): boolean {
    if (this.untilClose) this.done = true;
    return this.untilClose;
  }
}
