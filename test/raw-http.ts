// Raw HTTP on a bare TCP connection to the kernel, for what a client library would hide or refuse to send:
// pipelining, split writes, hand-made framing, upgrades.
import net from 'node:net';
import type { Kernel } from '../core/kernel.ts';

export interface RawAnswer {
  /** Everything the server sent, as latin1 (byte for byte). */
  text: string;
  /** True when the server closed the connection (or, with `resetIsClose`, reset it) before `until` matched. */
  closed: boolean;
}

export interface RawOptions {
  /** Pause after each write, ms (0: write them all at once). */
  gapMs?: number;
  /** Reject after this long, with what came so far. */
  timeoutMs?: number;
  /** Count a reset or broken pipe as the server closing (it may close while a refused body is still being sent). */
  resetIsClose?: boolean;
}

/**
 * Opens one connection to the kernel, writes each chunk in turn, and collects the answer until `until` matches
 * or the server closes.
 */
export function rawExchange(
  kernel: Kernel | string,
  writes: ReadonlyArray<string | Buffer>,
  until: (text: string) => boolean,
  options: RawOptions = {},
): Promise<RawAnswer> {
  const { gapMs = 0, timeoutMs = 10_000, resetIsClose = false } = options;
  const url = new URL(typeof kernel === 'string' ? kernel : kernel.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`timed out; got so far:\n${text}`));
    }, timeoutMs);
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ text, closed });
    };
    socket.on('data', (data: Buffer) => {
      text += data.toString('latin1');
      if (until(text)) done(false);
    });
    socket.on('end', () => done(true));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      if (resetIsClose && (error.code === 'ECONNRESET' || error.code === 'EPIPE')) done(true);
      else reject(error);
    });
    socket.on('connect', async () => {
      for (const chunk of writes) {
        if (socket.destroyed) return;
        socket.write(chunk);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}
