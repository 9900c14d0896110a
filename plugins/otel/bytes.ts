/**
 * A growable byte buffer that export bodies are written into: each span as it ends (batch.ts), in OTLP
 * protobuf (otlp-proto.ts) or JSON (otlp-json.ts). Text goes through Buffer's own unchecked UTF-8 writer
 * (offsets here are always in range, so Buffer.prototype.write's argument checks are skipped).
 */

interface RawWrites {
  utf8Write(text: string, offset: number): number;
}

export class Bytes {
  buffer: Buffer;
  length = 0;

  constructor(size: number) {
    this.buffer = Buffer.allocUnsafeSlow(size);
  }

  /** Room for `more` bytes after `length`. */
  ensure(more: number): void {
    const need = this.length + more;
    if (need <= this.buffer.length) return;
    const grown = Buffer.allocUnsafeSlow(Math.max(this.buffer.length * 2, need));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  /** UTF-8 of `text` (lone surrogates become U+FFFD), with no length before it. */
  utf8(text: string): void {
    // Up to 3 bytes per UTF-16 unit (a surrogate pair is 2 units, 4 bytes).
    this.ensure(text.length * 3);
    this.length += (this.buffer as unknown as RawWrites).utf8Write(text, this.length);
  }

  byte(value: number): void {
    this.ensure(1);
    this.buffer[this.length++] = value;
  }

  bytes(value: Uint8Array): void {
    this.ensure(value.length);
    this.buffer.set(value, this.length);
    this.length += value.length;
  }

  /** Forgets what was written, keeping the memory (unless it grew past `keepAtMost`: then a fresh one). */
  reset(keepAtMost: number, size: number): void {
    this.length = 0;
    if (this.buffer.length > keepAtMost) this.buffer = Buffer.allocUnsafeSlow(size);
  }

  view(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}
