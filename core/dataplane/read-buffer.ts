/**
 * The fast path's socket reads land in one buffer, reused for every read of every connection, instead of a
 * fresh ArrayBuffer per read pushed through a Readable ('data' event, nextTick to read more, a backing store
 * malloc'd and later swept): about a tenth of the proxy's CPU per request.
 *
 * The rule that makes one shared buffer safe: a chunk handed to a read callback is valid only until the callback
 * returns (the next read of any connection overwrites it). Whatever outlives the callback (a stash, a pending
 * head, bytes given to socket.write, which may keep them for an asynchronous write) is copied with `own` first.
 * Reads run one at a time on the event loop, so no two callbacks ever see the buffer at once.
 *
 * Client connections use the documented `onread` option of net.connect. An accepted socket has no such option:
 * the same machinery (the socket's kBuffer/kBufferCb slots and its handle's useUserBuffer, which `onread` sets
 * up) is found by feature check, and a Node without it keeps the 'data' event.
 */
import net from 'node:net';

/** libuv's own read size: a larger read would not be filled, a smaller one costs more system calls. */
const READ_BYTES = 64 * 1024;
const SHARED = Buffer.allocUnsafe(READ_BYTES);
const SHARED_MEMORY = SHARED.buffer;

export type ReadCallback = (chunk: Buffer) => void;

/** `chunk` itself, or a copy of it when it lies in the shared read buffer: what may be kept past the callback. */
export function own(chunk: Buffer): Buffer {
  return chunk.buffer === SHARED_MEMORY ? Buffer.from(chunk) : chunk;
}

/** Whether `chunk` lies in the shared read buffer (valid only during the read callback that got it). */
export function isShared(chunk: Buffer): boolean {
  return chunk.buffer === SHARED_MEMORY;
}

/** net.connect's `onread` option reading into the shared buffer. */
export function sharedOnread(callback: ReadCallback): { buffer: Uint8Array; callback: (bytes: number, buffer: Uint8Array) => boolean } {
  return {
    buffer: SHARED,
    callback: (bytes) => {
      callback(SHARED.subarray(0, bytes));
      return true;
    },
  };
}

interface UserBufferSlots {
  buffer: symbol;
  callback: symbol;
}
type SocketInternals = Record<symbol, unknown> & { _handle?: { useUserBuffer?: unknown } | null };

let slots: UserBufferSlots | null | undefined;
function userBufferSlots(socket: net.Socket): UserBufferSlots | null {
  if (slots !== undefined) return slots;
  const symbols = Object.getOwnPropertySymbols(socket);
  const buffer = symbols.find((symbol) => symbol.description === 'kBuffer');
  const callback = symbols.find((symbol) => symbol.description === 'kBufferCb');
  const generator = symbols.find((symbol) => symbol.description === 'kBufferGen');
  const internals = socket as unknown as SocketInternals;
  // Exactly the shape net.Socket gives these slots when no onread is set: anything else is not what we know.
  const known = buffer && callback && generator && internals[buffer] === null && internals[callback] === null && internals[generator] === null;
  slots = known ? { buffer, callback } : null;
  return slots;
}

/**
 * Reads an accepted socket into the shared buffer: `callback` gets what `socket.on('data')` would have. False
 * (nothing changed) where this Node's sockets do not have the machinery, or this socket is not one to do it
 * for; the caller listens to 'data' then.
 */
export function readIntoShared(socket: net.Socket, callback: ReadCallback): boolean {
  // Only a plain TCP or Unix socket (a TLS socket's reads are its decryption's), and only one with nothing read
  // yet: bytes a handed-back connection had unshifted wait in its Readable, which only 'data' would empty.
  if (Object.getPrototypeOf(socket) !== net.Socket.prototype || socket.readableLength > 0) return false;
  const known = userBufferSlots(socket);
  const internals = socket as unknown as SocketInternals;
  const handle = internals._handle;
  if (!known || !handle || typeof handle.useUserBuffer !== 'function' || internals[known.buffer] !== null) return false;
  internals[known.buffer] = SHARED;
  internals[known.callback] = (bytes: number): boolean => {
    callback(SHARED.subarray(0, bytes));
    return true;
  };
  (handle.useUserBuffer as (buffer: Uint8Array) => void).call(handle, SHARED);
  return true;
}

/**
 * A socket given to someone else (node:http): its reads go through the Readable again, each a copy pushed as
 * the 'data' event and `read()` expect (returning push's answer pauses reading, as Node's own path does).
 */
export function readIntoStream(socket: net.Socket): void {
  const known = slots;
  const internals = socket as unknown as SocketInternals;
  if (!known || internals[known.buffer] !== SHARED) return;
  internals[known.callback] = (bytes: number): boolean => socket.push(Buffer.from(SHARED.subarray(0, bytes)));
}
