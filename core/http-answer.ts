/**
 * A strict reader of HTTP/1.x answers, fed the bytes as they arrive: what Tenement's own small clients use where
 * node:http costs more than the exchange (the CLI's JSON requests, cli/plain-http.ts; the OTLP export,
 * plugins/otel/plain-transport.ts). It accepts what a server may send (status line, headers, a body by
 * Content-Length, chunked, or up to the close) and nothing else: a malformed or oversized answer, or one cut short,
 * is an AnswerError, never a hang or an unbounded buffer.
 */

/** The status line and headers together, as node:http's default (16 KiB) with room to spare. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** A `ten ps` of tens of thousands of instances fits many times over; more is not an answer we can print. */
export const MAX_BODY_BYTES = 64 * 1024 * 1024;
/** A chunk-size line: hex digits and extensions. */
const MAX_CHUNK_LINE = 4096;

/** The server's answer is not HTTP we can read (the message says what); the connection is closed. */
export class AnswerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AnswerError';
  }
}

/** No byte arrived in time. */
export class AnswerTimeout extends Error {
  constructor() {
    super('no answer in time');
    this.name = 'AnswerTimeout';
  }
}

const CRLF = Buffer.from('\r\n');
const BLANK_LINE = Buffer.from('\r\n\r\n');
const STATUS_LINE = /^HTTP\/1\.([01]) ([1-9]\d\d)(?: ([^\r\n]*))?$/;
const HEADER_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/;
const CHUNK_LINE = /^([0-9a-fA-F]{1,8})(?:[ \t]*;[^\r\n]*)?$/;

type Phase = 'head' | 'length' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'until-close' | 'done';

/**
 * The answer, fed the bytes as they arrive. push() returns true once the answer is whole; end() tells it the
 * server closed. Both throw AnswerError for what is not a well-formed answer within the limits.
 */
export class AnswerParser {
  status = 0;
  /** The status line's reason phrase ('' when there is none). */
  reason = '';
  /** The Retry-After header's value, if the answer had one. */
  retryAfter: string | undefined = undefined;
  /** Whether the server keeps the connection open after this answer (HTTP/1.1 without `Connection: close`, framed by length). */
  keepAlive = false;
  /** Bytes that came after the answer (nothing was asked for them: a connection that has them is out of step). */
  trailing = 0;
  private phase: Phase = 'head';
  /** Bytes of the head, a chunk-size line or the trailers not parsed yet (bounded by their limits). */
  private pending: Buffer = Buffer.alloc(0);
  private readonly body: Buffer[] = [];
  private bodyBytes = 0;
  /** Bytes left of the Content-Length body or of the current chunk. */
  private remaining = 0;
  private trailerBytes = 0;

  constructor(private readonly maxBodyBytes = MAX_BODY_BYTES) {}

  get done(): boolean {
    return this.phase === 'done';
  }

  text(): string {
    return this.bytes().toString('utf8');
  }

  bytes(): Buffer {
    return this.body.length === 1 ? this.body[0]! : Buffer.concat(this.body, this.bodyBytes);
  }

  push(chunk: Buffer): boolean {
    let data = chunk;
    while (data.length > 0 && this.phase !== 'done') data = this.step(data);
    this.trailing += data.length;
    return this.phase === 'done';
  }

  /** The server closed the connection: the end of a body read up to the close, else an answer cut short. */
  end(): void {
    if (this.phase === 'until-close') this.phase = 'done';
    if (this.phase !== 'done') throw new AnswerError(`the connection closed before the answer was complete (${this.phase === 'head' ? 'no complete status line and headers' : 'body cut short'})`);
  }

  /** Consumes what it can of `data` in the current phase; returns the rest. */
  private step(data: Buffer): Buffer {
    switch (this.phase) {
      case 'length':
      case 'chunk-data':
      case 'until-close': {
        const take = this.phase === 'until-close' ? data.length : Math.min(this.remaining, data.length);
        this.keep(data.subarray(0, take));
        this.remaining -= take;
        if (this.remaining === 0 && this.phase === 'length') this.phase = 'done';
        else if (this.remaining === 0 && this.phase === 'chunk-data') this.phase = 'chunk-end';
        return data.subarray(take);
      }
      case 'head':
        return this.line(data, BLANK_LINE, MAX_HEAD_BYTES, 'the status line and headers', (head) => this.head(head));
      case 'chunk-size':
        return this.line(data, CRLF, MAX_CHUNK_LINE, 'a chunk-size line', (line) => this.chunkSize(line));
      case 'chunk-end':
        return this.line(data, CRLF, CRLF.length, 'the end of a chunk', (line) => {
          if (line.length > 0) throw new AnswerError('a chunk is longer than its size');
          this.phase = 'chunk-size';
        });
      case 'trailers':
        return this.line(data, CRLF, MAX_HEAD_BYTES, 'the trailers', (line) => {
          this.trailerBytes += line.length + 2;
          if (this.trailerBytes > MAX_HEAD_BYTES) throw new AnswerError(`the trailers exceed ${MAX_HEAD_BYTES} bytes`);
          if (line.length === 0) this.phase = 'done';
          else if (!HEADER_LINE.test(line)) throw new AnswerError(`a malformed trailer line: ${JSON.stringify(line.slice(0, 80))}`);
        });
      default:
        return Buffer.alloc(0);
    }
  }

  /**
   * Collects bytes up to `end`, never more than `limit` of them, and hands what precedes it (latin1) to `use`;
   * returns what follows it.
   */
  private line(data: Buffer, end: Buffer, limit: number, what: string, use: (text: string) => void): Buffer {
    const scanFrom = Math.max(0, this.pending.length - end.length + 1);
    this.pending = this.pending.length === 0 ? data : Buffer.concat([this.pending, data]);
    const at = this.pending.indexOf(end, scanFrom);
    if (at === -1) {
      if (this.pending.length > limit) throw new AnswerError(`${what}: more than ${limit} bytes`);
      return Buffer.alloc(0);
    }
    if (at > limit) throw new AnswerError(`${what}: more than ${limit} bytes`);
    const text = this.pending.toString('latin1', 0, at);
    const rest = this.pending.subarray(at + end.length);
    this.pending = Buffer.alloc(0);
    use(text);
    return rest;
  }

  private head(head: string): void {
    const [statusLine = '', ...lines] = head.split('\r\n');
    const status = STATUS_LINE.exec(statusLine);
    if (!status) throw new AnswerError(`not an HTTP/1.x status line: ${JSON.stringify(statusLine.slice(0, 80))}`);
    this.status = Number(status[2]);
    this.reason = status[3] ?? '';
    this.retryAfter = undefined;
    let length: number | null = null;
    let chunked = false;
    let close = status[1] === '0';
    for (const line of lines) {
      const header = HEADER_LINE.exec(line);
      if (!header) throw new AnswerError(`a malformed header line: ${JSON.stringify(line.slice(0, 80))}`);
      const name = header[1]!.toLowerCase();
      const value = header[2]!;
      if (name === 'content-length') {
        if (!/^\d{1,15}$/.test(value) || (length !== null && length !== Number(value))) throw new AnswerError(`a bad Content-Length: ${JSON.stringify(value.slice(0, 40))}`);
        length = Number(value);
      } else if (name === 'transfer-encoding') {
        if (value.toLowerCase() !== 'chunked' || chunked) throw new AnswerError(`an unsupported Transfer-Encoding: ${JSON.stringify(value.slice(0, 40))}`);
        chunked = true;
      } else if (name === 'connection') {
        for (const option of value.toLowerCase().split(',')) {
          const word = option.trim();
          if (word === 'close') close = true;
          else if (word === 'keep-alive' && status[1] === '0') close = false;
        }
      } else if (name === 'retry-after') {
        this.retryAfter = value;
      } else if (name === 'content-encoding' && value.toLowerCase() !== 'identity') {
        // Nothing was asked for (no Accept-Encoding): an encoded body is not one we can read.
        throw new AnswerError(`an unrequested Content-Encoding: ${JSON.stringify(value.slice(0, 40))}`);
      }
    }
    // 100 Continue and 103 Early Hints come before the answer; nothing here asks for an upgrade (101).
    if (this.status === 100 || this.status === 103) return;
    if (this.status < 200) throw new AnswerError(`an unexpected ${this.status} answer`);
    // Both framings at once is how requests get smuggled: not an answer to trust.
    if (chunked && length !== null) throw new AnswerError('both Content-Length and Transfer-Encoding: chunked');
    this.keepAlive = !close && (chunked || length !== null || this.status === 204 || this.status === 304);
    if (this.status === 204 || this.status === 304) this.phase = 'done';
    else if (chunked) this.phase = 'chunk-size';
    else if (length !== null) {
      this.checkSize(length);
      this.remaining = length;
      this.phase = length === 0 ? 'done' : 'length';
    } else this.phase = 'until-close';
  }

  private chunkSize(line: string): void {
    const size = CHUNK_LINE.exec(line);
    if (!size) throw new AnswerError(`a malformed chunk-size line: ${JSON.stringify(line.slice(0, 40))}`);
    this.remaining = Number.parseInt(size[1]!, 16);
    this.checkSize(this.remaining);
    this.phase = this.remaining === 0 ? 'trailers' : 'chunk-data';
  }

  /** Refuses a body that would grow past the limit, before its bytes are kept. */
  private checkSize(more: number): void {
    if (this.bodyBytes + more > this.maxBodyBytes) throw new AnswerError(`the answer's body exceeds ${this.maxBodyBytes} bytes`);
  }

  private keep(bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.checkSize(bytes.length);
    this.body.push(bytes);
    this.bodyBytes += bytes.length;
  }
}

