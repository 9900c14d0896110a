import type { ServerResponse } from 'node:http';
import type { LogFilter } from './sql.ts';
import type { LogRecord } from './store.ts';

/**
 * A client that reads slower than an instance writes is not allowed to grow our memory: past this much
 * unsent output its lines are skipped and counted, and it gets one `dropped` event when it catches up.
 */
const MAX_BUFFERED_BYTES = 1 << 20;

interface Subscriber {
  filter: LogFilter;
  /** Lowercased search text: the live stream matches it as a case-insensitive substring. */
  needle: string | null;
  res: ServerResponse;
  dropped: number;
  keepAlive: NodeJS.Timeout;
}

const frame = (record: LogRecord): string => `data: ${JSON.stringify(record)}\n\n`;

function matches(sub: Subscriber, record: LogRecord): boolean {
  const f = sub.filter;
  if (f.id !== undefined && record.id !== f.id) return false;
  if (f.service !== undefined && record.service !== f.service) return false;
  if (f.stream !== undefined && record.stream !== f.stream) return false;
  if (sub.needle !== null && !record.line.toLowerCase().includes(sub.needle)) return false;
  return true;
}

/** Server-Sent Event streams of lines as they are captured, each with its own (already scoped) filter. */
export class LiveStreams {
  private readonly subscribers = new Set<Subscriber>();

  constructor(private readonly keepAliveMs: number) {}

  get size(): number {
    return this.subscribers.size;
  }

  /** Called from the `log` hook for every line: cheap when nobody listens, one JSON encoding when many do. */
  publish(record: LogRecord): void {
    if (this.subscribers.size === 0) return;
    let payload: string | null = null;
    for (const sub of this.subscribers) {
      if (!matches(sub, record)) continue;
      payload ??= frame(record);
      this.send(sub, payload);
    }
  }

  /**
   * Starts the event stream on a hijacked response: headers, the `backfill` lines, then live lines until the
   * client goes away or `closeAll` ends it.
   */
  open(res: ServerResponse, filter: LogFilter, backfill: readonly LogRecord[]): void {
    // A client gone before we got here would never send the 'close' we clean up on.
    if (res.destroyed || !res.socket || res.socket.destroyed) {
      res.destroy();
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      // Tells nginx-style buffering proxies in front of us to pass events through as they come.
      'x-accel-buffering': 'no',
    });
    // A first comment gets the headers out now, so the client knows it is connected before any line.
    res.write(': connected\n\n');
    for (const record of backfill) res.write(frame(record));
    const keepAlive = setInterval(() => {
      if (!res.writableEnded) res.write(': keep-alive\n\n');
    }, this.keepAliveMs);
    keepAlive.unref();
    const sub: Subscriber = { filter, needle: filter.search?.toLowerCase() ?? null, res, dropped: 0, keepAlive };
    this.subscribers.add(sub);
    res.on('error', () => undefined);
    // 'close' comes both when the client disconnects and after we end the response.
    res.once('close', () => {
      clearInterval(keepAlive);
      this.subscribers.delete(sub);
    });
    // The server keeps half-open connections (a client that shuts down its side after a request still gets its
    // answer), so a client that leaves shows only as the end of what it sends: without this its stream, and its
    // place among the subscribers, would last until a keep-alive write failed. An event stream has no end to wait for.
    res.socket.once('end', () => res.end());
  }

  /** Ends every stream cleanly (kernel shutdown). */
  closeAll(): void {
    for (const sub of this.subscribers) {
      clearInterval(sub.keepAlive);
      sub.res.end();
    }
    this.subscribers.clear();
  }

  private send(sub: Subscriber, payload: string): void {
    const res = sub.res;
    if (res.writableEnded || res.destroyed) return;
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      sub.dropped += 1;
      return;
    }
    if (sub.dropped > 0) {
      res.write(`event: dropped\ndata: ${JSON.stringify({ lines: sub.dropped })}\n\n`);
      sub.dropped = 0;
    }
    res.write(payload);
  }
}
