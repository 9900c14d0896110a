/**
 * Reads an instance's response head off its connection, across as many chunks as it comes in: the twin of the
 * client connection's request-head reading. What follows the head (body bytes, or the next interim response's
 * head) is left in `rest`, so the exchange forwards it without another copy.
 */
import { MAX_HEAD_BYTES, parseResponseHead, type ResponseHead } from './http1.ts';
import { own } from './read-buffer.ts';

const CRLFCRLF = Buffer.from('\r\n\r\n');
const NOTHING = Buffer.alloc(0);

export class ResponseHeadReader {
  /** Bytes of a head still incomplete. */
  private pending: Buffer | null = null;
  /** After a head was read: the bytes that followed it in the same chunk. */
  rest: Buffer = NOTHING;
  /** After a head was read: the buffer it was parsed from (its `kept` ranges index it), valid as `rest` is. */
  source: Buffer = NOTHING;

  /** The head once complete, null while more bytes are needed, or why the head is refused. */
  read(chunk: Buffer): ResponseHead | string | null {
    const buffer = this.pending ? Buffer.concat([this.pending, chunk]) : chunk;
    const end = buffer.indexOf(CRLFCRLF);
    if (end === -1) {
      if (buffer.length > MAX_HEAD_BYTES) return 'response head too large';
      this.pending = own(buffer);
      return null;
    }
    this.pending = null;
    const head = parseResponseHead(buffer, end);
    if (typeof head !== 'string') {
      this.rest = buffer.subarray(end + 4);
      this.source = buffer;
    }
    return head;
  }
}
