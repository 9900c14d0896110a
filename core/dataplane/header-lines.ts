/**
 * Reading a head's header lines (core/dataplane/http1.ts parses request and response heads through it), and the
 * response head whose name/value pairs are read only when something asks for them.
 */

/** tchar (RFC 9110 §5.6.2), as a byte table for header names and the chunk scanner. */
export const TCHAR = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

/** Removes optional whitespace (SP and HTAB only: String#trim would also eat obs-text such as 0xA0). */
export function trimOws(value: string): string {
  let start = 0;
  let end = value.length;
  while (start < end && (value.charCodeAt(start) === 32 || value.charCodeAt(start) === 9)) start++;
  while (end > start && (value.charCodeAt(end - 1) === 32 || value.charCodeAt(end - 1) === 9)) end--;
  return start === 0 && end === value.length ? value : value.slice(start, end);
}

/**
 * A head's header lines, one at a time, found with indexOf (no array of every line; the head's bytes were
 * checked, so every CR is part of a CRLF and the text's indexes are the buffer's). Requests and responses read
 * their lines through it, so both split and check a line alike, and each line is scanned once: the head's cost
 * stays linear in its size whatever its line count. A line's name and value become strings only when asked for.
 */
export class HeaderLines {
  /** The current line: where it starts, its colon, and where its CRLF is, in the text. */
  start = 0;
  colon = 0;
  end = 0;

  /** `next`: the index of the CRLF that ends the head's first line (-1: there is no header line). */
  constructor(
    private readonly text: string,
    private next: number,
  ) {}

  get more(): boolean {
    return this.next !== -1;
  }

  get nameLength(): number {
    return this.colon - this.start;
  }

  get name(): string {
    return this.text.slice(this.start, this.colon);
  }

  /** The value as it came, OWS included. */
  get rawValue(): string {
    return this.text.slice(this.colon + 1, this.end);
  }

  /** Reads the next line: null, or why it is refused. */
  read(): string | null {
    const text = this.text;
    const start = this.next + 2;
    const next = text.indexOf('\r\n', start);
    const end = next === -1 ? text.length : next;
    const colon = text.indexOf(':', start);
    if (colon === -1 || colon >= end || colon === start) return 'malformed header line';
    // Also refuses obs-fold: a continuation line starts with whitespace, which no name may hold. (A table lookup
    // per byte: cheaper than a regex for names this short.)
    for (let i = start; i < colon; i++) if (TCHAR[text.charCodeAt(i)] !== 1) return 'malformed header name';
    this.next = next;
    this.start = start;
    this.colon = colon;
    this.end = end;
    return null;
  }

  /** An HTAB in the value: llhttp refuses one around a length or a coding, and so do the parsers (read for those only). */
  get hasTab(): boolean {
    return this.rawValue.includes('\t');
  }
}

/**
 * A parsed response head (http1.ts ResponseHead) whose name/value pairs (`raw`) are read from its text on first
 * use: a head rebuilt from strings, an interim response. Most responses never need them (their head is copied as
 * it came), so parsing makes strings only of the lines it checks.
 */
export class LazyResponseHead {
  private pairs: string[] | null = null;

  constructor(
    readonly status: number,
    readonly reason: string,
    private readonly text: string,
    /** Where the status line's CRLF is (-1: no header line). */
    private readonly statusEnd: number,
    readonly kept: number[] | null,
    readonly contentLength: number,
    readonly chunked: boolean,
    readonly close: boolean,
  ) {}

  /** Name/value pairs as received (values without OWS); the lines were checked when the head was parsed. */
  get raw(): string[] {
    if (this.pairs === null) {
      const pairs: string[] = [];
      const lines = new HeaderLines(this.text, this.statusEnd);
      while (lines.more && lines.read() === null) pairs.push(lines.name, trimOws(lines.rawValue));
      this.pairs = pairs;
    }
    return this.pairs;
  }
}
