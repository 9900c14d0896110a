import { ChunkedScanner } from './chunked.ts';

/**
 * Where an HTTP/1.1 body ends in the bytes of its connection: after a known length, at the end of its chunked
 * framing, or (a response's only) when the connection closes. The request and response framings
 * (request-body.ts, response-body.ts) differ only in how their head says which.
 */
export class BodyFraming {
  protected left: number;
  private readonly scanner: ChunkedScanner | null;
  private readonly onPayload: ((data: Buffer) => void) | null;
  /** Neither length nor chunks: the body runs until the connection closes (a response's only). */
  readonly untilClose: boolean;
  /** Whether the whole body has been seen (from the start, for an empty one). */
  done: boolean;

  /**
   * `length`: the body's byte count, or 'until-close'; ignored when `chunked`. `onPayload` receives the body
   * itself: the bytes of a counted body, the decoded data of a chunked one.
   */
  constructor(chunked: boolean, length: number | 'until-close', onPayload: ((data: Buffer) => void) | null = null) {
    this.scanner = chunked ? new ChunkedScanner(onPayload) : null;
    this.onPayload = onPayload;
    this.untilClose = !chunked && length === 'until-close';
    this.left = chunked || length === 'until-close' ? 0 : length;
    this.done = !chunked && !this.untilClose && this.left === 0;
  }

  /** Broken chunked framing. */
  get error(): string | null {
    return this.scanner?.error ?? null;
  }

  /** How many of `bytes` belong to this body (check `error` first, then `done`); what follows is not its own. */
  measure(bytes: Buffer): number {
    if (this.scanner) {
      const end = this.scanner.scan(bytes);
      if (this.scanner.error) return bytes.length;
      if (end !== -1) this.done = true;
      return end === -1 ? bytes.length : end;
    }
    if (this.untilClose) return bytes.length;
    const cut = Math.min(this.left, bytes.length);
    if (this.onPayload && cut > 0) this.onPayload(cut === bytes.length ? bytes : bytes.subarray(0, cut));
    this.left -= cut;
    if (this.left === 0) this.done = true;
    return cut;
  }
}
