import { BodyFraming } from './body-framing.ts';
import { bodilessResponse, type ResponseHead } from './http1.ts';

/**
 * Where a response's body ends on the upstream connection: nowhere for a bodiless one (HEAD, 1xx, 204, 304),
 * after Content-Length bytes, at the end of its chunked framing, or when the upstream closes. The response-side
 * twin of RequestBodyFraming: what follows the end answers nothing that was asked.
 */
export class ResponseBodyFraming extends BodyFraming {
  constructor(method: string, head: ResponseHead) {
    const bodiless = bodilessResponse(method, head.status);
    super(!bodiless && head.chunked, bodiless ? 0 : head.contentLength >= 0 ? head.contentLength : 'until-close');
  }

  /** The upstream closed: that ends a body framed by the close, and no other. */
  closed(): boolean {
    if (this.untilClose) this.done = true;
    return this.untilClose;
  }
}
