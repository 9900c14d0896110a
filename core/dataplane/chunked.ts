/**
 * Finds where a chunked body ends without decoding it: the bytes are forwarded untouched, so all the proxy
 * needs is the boundary to know when the message is complete and the connection can carry the next one.
 * An in-process instance takes the body whole instead: give it `onData` and it gets the decoded data too.
 */
const enum State {
  Size,
  Extension,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerLine,
  TrailerLf,
  FinalLf,
  Done,
}

const MAX_SIZE_DIGITS = 15;

export class ChunkedScanner {
  private state = State.Size;
  private size = 0;
  private digits = 0;
  private remaining = 0;
  /** Set when the framing is broken; the connection must then be closed. */
  error: string | null = null;

  constructor(private readonly onData: ((data: Buffer) => void) | null = null) {}

  get done(): boolean {
    return this.state === State.Done;
  }

  /** Consumes bytes from `start`; returns the index just past the body's end, or -1 if it has not ended yet. */
  scan(buffer: Buffer, start = 0): number {
    let i = start;
    const length = buffer.length;
    while (i < length) {
      switch (this.state) {
        case State.Size: {
          const c = buffer[i]!;
          const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (digit >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail('chunk size too large');
            this.size = this.size * 16 + digit;
          } else if (this.digits === 0) {
            return this.fail('missing chunk size');
          } else if (c === 13) {
            this.state = State.SizeLf;
          } else if (c === 59 /* ; */ || c === 32 || c === 9) {
            this.state = State.Extension;
          } else {
            return this.fail('bad chunk size');
          }
          i++;
          break;
        }
        case State.Extension:
          if (buffer[i] === 13) this.state = State.SizeLf;
          i++;
          break;
        case State.SizeLf:
          if (buffer[i] !== 10) return this.fail('expected LF after chunk size');
          i++;
          if (this.size === 0) {
            this.state = State.TrailerStart;
          } else {
            this.remaining = this.size;
            this.state = State.Data;
          }
          this.size = 0;
          this.digits = 0;
          break;
        case State.Data: {
          const take = Math.min(this.remaining, length - i);
          if (this.onData !== null) this.onData(buffer.subarray(i, i + take));
          i += take;
          this.remaining -= take;
          if (this.remaining === 0) this.state = State.DataCr;
          break;
        }
        case State.DataCr:
          if (buffer[i] !== 13) return this.fail('expected CRLF after chunk data');
          this.state = State.DataLf;
          i++;
          break;
        case State.DataLf:
          if (buffer[i] !== 10) return this.fail('expected CRLF after chunk data');
          this.state = State.Size;
          i++;
          break;
        case State.TrailerStart:
          this.state = buffer[i] === 13 ? State.FinalLf : State.TrailerLine;
          i++;
          break;
        case State.TrailerLine:
          if (buffer[i] === 13) this.state = State.TrailerLf;
          i++;
          break;
        case State.TrailerLf:
          if (buffer[i] !== 10) return this.fail('expected LF after trailer');
          this.state = State.TrailerStart;
          i++;
          break;
        case State.FinalLf:
          if (buffer[i] !== 10) return this.fail('expected LF at end of chunked body');
          this.state = State.Done;
          return i + 1;
        case State.Done:
          return i;
      }
    }
    return -1;
  }

  private fail(reason: string): number {
    this.error = reason;
    return -1;
  }
}
