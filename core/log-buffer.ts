import type { LogLine, LogStream } from './types.ts';

/**
 * What one kept line really costs on the heap: its characters plus the entry object, the string header and
 * the array slot (measured at about 170 bytes for short lines). Counting only characters let a "1 MB"
 * buffer of short lines hold almost 5 MB.
 */
const ENTRY_OVERHEAD_BYTES = 170;
const cost = (entry: LogLine): number => entry.line.length + ENTRY_OVERHEAD_BYTES;

/** Recent output of one instance, bounded by bytes so a chatty tenant cannot grow the host's memory. */
export class LogBuffer {
  private readonly lines: LogLine[] = [];
  private head = 0;
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  push(entry: LogLine): void {
    this.lines.push(entry);
    this.bytes += cost(entry);
    this.dropOldest(this.maxBytes);
    // Compact occasionally instead of shifting on every push.
    if (this.head > 1024 && this.head * 2 > this.lines.length) {
      this.lines.splice(0, this.head);
      this.head = 0;
    }
  }

  private dropOldest(budget: number): void {
    while (this.bytes > budget && this.head < this.lines.length - 1) {
      this.bytes -= cost(this.lines[this.head]!);
      this.head += 1;
    }
  }

  /** Keeps only the newest lines within `bytes` (a hibernated instance keeps a short tail, not its full budget). */
  trimTo(bytes: number): void {
    this.dropOldest(bytes);
    this.lines.splice(0, this.head);
    this.head = 0;
  }

  get bytesUsed(): number {
    return this.bytes;
  }

  get size(): number {
    return this.lines.length - this.head;
  }

  query(options: { stream?: LogStream; since?: number; search?: string; limit?: number } = {}): LogLine[] {
    const out: LogLine[] = [];
    const limit = options.limit ?? Infinity;
    for (let i = this.lines.length - 1; i >= this.head && out.length < limit; i--) {
      const entry = this.lines[i]!;
      if (options.since !== undefined && entry.at < options.since) break;
      if (options.stream && entry.stream !== options.stream) continue;
      if (options.search && !entry.line.includes(options.search)) continue;
      out.push(entry);
    }
    return out.reverse();
  }

  clear(): void {
    this.lines.length = 0;
    this.head = 0;
    this.bytes = 0;
  }
}

/** Splits a byte stream into lines, holding a partial last line until its newline arrives (or the stream ends). */
export class LineSplitter {
  private partial = '';

  constructor(
    private readonly emit: (line: string) => void,
    private readonly maxLineLength = 16_384,
  ) {}

  write(chunk: Buffer | string): void {
    const text = this.partial + chunk.toString();
    let start = 0;
    for (let nl = text.indexOf('\n', start); nl !== -1; nl = text.indexOf('\n', start)) {
      const end = nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
      this.emit(text.slice(start, end));
      start = nl + 1;
    }
    this.partial = text.slice(start);
    // A line without a newline for too long is flushed in pieces rather than buffered without bound.
    while (this.partial.length > this.maxLineLength) {
      this.emit(this.partial.slice(0, this.maxLineLength));
      this.partial = this.partial.slice(this.maxLineLength);
    }
  }

  end(): void {
    if (this.partial.length > 0) this.emit(this.partial);
    this.partial = '';
  }
}
