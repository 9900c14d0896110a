/**
 * What a TypeScript handler sees of sdk/wit/handler.wit: the host imports of the `tenement:http/handler` world
 * as ES modules. `ten build` leaves these imports to the component model (they are not bundled), so they exist
 * only inside the component. A WIT `result` error is thrown as an Error whose message (and `payload`) is the
 * host's error string. Prefer the wrappers in sdk/wasm.ts.
 */

declare module 'tenement:http/log@0.1.0' {
  /** Appends one line to the instance's log (stdout or stderr). console.log/console.error use this. */
  export function write(to: 'stdout' | 'stderr', line: string): void;
}

declare module 'tenement:http/runtime@0.1.0' {
  /** Milliseconds since the Unix epoch (Date.now and `new Date()` use this). */
  export function now(): number;
  /** Random bytes from the host's CSPRNG, at most 65536 (Math.random and crypto.getRandomValues use this). */
  export function randomBytes(len: number): Uint8Array;
  /** UTF-8 bytes of a string (TextEncoder uses this). */
  export function utf8Encode(text: string): Uint8Array;
  /** A string from UTF-8 bytes, invalid sequences replaced by U+FFFD (TextDecoder uses this). */
  export function utf8Decode(bytes: Uint8Array): string;
}

declare module 'tenement:http/metrics@0.1.0' {
  /** Sets a gauge series. Throws on an invalid name or labels. (A name already used as a counter: ignored.) */
  export function set(name: string, labels: [string, string][], value: number): void;
  /** Adds a finite delta >= 0 to a counter series. Throws on invalid input. (A name already a gauge: ignored.) */
  export function add(name: string, labels: [string, string][], delta: number): void;
}

declare module 'tenement:http/tenant-data@0.1.0' {
  /** The file's bytes, or null when it does not exist. Throws on an invalid name or an I/O error. */
  export function read(name: string): Uint8Array | null;
  /** Creates or replaces the file atomically. Throws on an invalid name, a file over 16 MiB, or an I/O error. */
  export function write(name: string, data: Uint8Array): void;
  /** True when a file was removed, false when there was none. */
  export function remove(name: string): boolean;
  /** The tenant's file names, sorted. */
  export function names(): string[];
}
