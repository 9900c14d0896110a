import { BodyFraming } from './body-framing.ts';
import type { RequestHead } from './http1.ts';

/**
 * Where a request's body ends on the client connection: after Content-Length bytes, or at the end of its chunked
 * framing. Whatever follows belongs to the next pipelined request (a broken chunked framing is answered 400 and
 * the connection closed). Shared by the proxied and the in-process exchange, which differ only in what they do
 * with the body's bytes.
 */
export class RequestBodyFraming extends BodyFraming {
  /** `onPayload` receives the body itself: the bytes of a Content-Length body, the decoded data of a chunked one. */
  constructor(head: RequestHead, onPayload: ((data: Buffer) => void) | null = null) {
    // No Content-Length and not chunked: a request has no body (it never runs until the close).
    super(head.chunked, Math.max(0, head.contentLength), onPayload);
  }

  /** Bytes still expected of a Content-Length body (0 for a chunked one: its length is not known up front). */
  get declaredLeft(): number {
    return this.left;
  }
}
