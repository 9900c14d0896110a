/**
 * Finds where a chunked body ends without decoding it: the bytes are forwarded untouched, so all the proxy
 * needs is the boundary to know when the message is complete and the connection can carry the next one.
 * An in-process instance takes the body whole instead: give it `onData` and it gets the decoded data too.
 *
 * Strict (RFC 9112 §7.1), at least as strict as llhttp: hex sizes of bounded length, extensions as
 * `;name[=token|"quoted"]` with no whitespace or control bytes and a bounded length, CRLF everywhere (never a
 * bare LF), trailer fields well formed and bounded. Whatever an app's parser could read differently is refused.
 */
import { TCHAR } from './http1.ts';

const enum State {
  Size,
  ExtName,
  ExtValueStart,
  ExtToken,
  ExtQuoted,
  ExtEscape,
  ExtQuoteEnd,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerName,
  TrailerValue,
  TrailerLf,
  FinalLf,
  Done,
}

const MAX_SIZE_DIGITS = 15;
/** Chunk extensions are ignored by everyone; more than this on one chunk line is an attack, not metadata. */
export const MAX_EXTENSION_BYTES = 4096;
export const MAX_TRAILER_BYTES = 16 * 1024;

/** Field-value bytes: HTAB, visible ASCII, SP, obs-text. */
const valueByte = (c: number): boolean => c === 9 || (c >= 32 && c !== 127);

export class ChunkedScanner {
  private state = State.Size;
  private size = 0;
  private digits = 0;
  private remaining = 0;
  /** Bytes of the current chunk line's extensions, or of all trailer fields. */
  private extra = 0;
  /** Bytes of the extension name being read. */
  private nameBytes = 0;
  private trailerBytes = 0;
  /** Set when the framing is broken; the connection must then be closed. */
  error: string | null = null;

  constructor(private readonly onData: ((data: Buffer) => void) | null = null) {}

  get done(): boolean {
    return this.state === State.Done;
  }

  /** Consumes bytes from `start`; returns the index just past the body's end, or -1 if it has not ended yet. */
  scan(buffer: Buffer, start = 0): number {
    if (this.error !== null) return -1;
    let i = start;
    const length = buffer.length;
    while (i < length) {
      const c = buffer[i]!;
      switch (this.state) {
        case State.Size: {
          const digit = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
          if (digit >= 0) {
            if (++this.digits > MAX_SIZE_DIGITS) return this.fail('chunk size too large');
            this.size = this.size * 16 + digit;
          } else if (this.digits === 0) {
            return this.fail('missing chunk size');
          } else if (c === 13) {
            this.state = State.SizeLf;
          } else if (c === 59 /* ; */) {
            this.extra = 0;
            this.nameBytes = 0;
            this.state = State.ExtName;
          } else {
            return this.fail('bad chunk size');
          }
          i++;
          break;
        }
        case State.ExtName:
        case State.ExtValueStart:
        case State.ExtToken:
        case State.ExtQuoted:
        case State.ExtEscape:
        case State.ExtQuoteEnd:
          if (++this.extra > MAX_EXTENSION_BYTES) return this.fail('chunk extension too long');
          if (!this.extension(c)) return this.fail('malformed chunk extension');
          i++;
          break;
        case State.SizeLf:
          if (c !== 10) return this.fail('expected LF after chunk size');
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
          if (c !== 13) return this.fail('expected CRLF after chunk data');
          this.state = State.DataLf;
          i++;
          break;
        case State.DataLf:
          if (c !== 10) return this.fail('expected CRLF after chunk data');
          this.state = State.Size;
          i++;
          break;
        case State.TrailerStart:
          if (c === 13) this.state = State.FinalLf;
          else if (TCHAR[c] === 1) this.state = State.TrailerName;
          else return this.fail('malformed trailer field');
          i++;
          break;
        case State.TrailerName:
        case State.TrailerValue:
          if (++this.trailerBytes > MAX_TRAILER_BYTES) return this.fail('trailer fields too long');
          if (this.state === State.TrailerName) {
            if (c === 58 /* : */) this.state = State.TrailerValue;
            else if (TCHAR[c] !== 1) return this.fail('malformed trailer field');
          } else if (c === 13) this.state = State.TrailerLf;
          else if (!valueByte(c)) return this.fail('malformed trailer field');
          i++;
          break;
        case State.TrailerLf:
          if (c !== 10) return this.fail('expected LF after trailer');
          this.state = State.TrailerStart;
          i++;
          break;
        case State.FinalLf:
          if (c !== 10) return this.fail('expected LF at end of chunked body');
          this.state = State.Done;
          return i + 1;
        case State.Done:
          return i;
      }
    }
    return -1;
  }

  /** One byte of `;name[=token|"quoted"]` (repeated); false when it does not fit. */
  private extension(c: number): boolean {
    switch (this.state) {
      case State.ExtName:
        // A name of at least one tchar, then `=`, `;` (next extension) or the line's end.
        if (TCHAR[c] === 1) return (this.nameBytes += 1), true;
        if (this.nameBytes === 0) return false;
        this.nameBytes = 0;
        if (c === 61 /* = */) this.state = State.ExtValueStart;
        else if (c === 59) this.state = State.ExtName;
        else if (c === 13) this.state = State.SizeLf;
        else return false;
        return true;
      case State.ExtValueStart:
        if (TCHAR[c] === 1) this.state = State.ExtToken;
        else if (c === 34 /* " */) this.state = State.ExtQuoted;
        else return false;
        return true;
      case State.ExtToken:
        if (TCHAR[c] === 1) return true;
        if (c === 59) this.state = State.ExtName;
        else if (c === 13) this.state = State.SizeLf;
        else return false;
        return true;
      case State.ExtQuoted:
        if (c === 34) this.state = State.ExtQuoteEnd;
        else if (c === 92 /* \ */) this.state = State.ExtEscape;
        else if (!valueByte(c)) return false;
        return true;
      case State.ExtEscape:
        if (!valueByte(c)) return false;
        this.state = State.ExtQuoted;
        return true;
      case State.ExtQuoteEnd:
        if (c === 59) this.state = State.ExtName;
        else if (c === 13) this.state = State.SizeLf;
        else return false;
        return true;
      default:
        return false;
    }
  }

  private fail(reason: string): number {
    this.error = reason;
    return -1;
  }
}
