/**
 * Tenement's own log: JSON lines on stderr, in pino's format (`{"level":30,"time":"...",<bindings>,<fields>,"msg":
 * "..."}`, levels 10-60, `err` serialized as pino's err serializer does: core/log-line.ts), TENEMENT_LOG_LEVEL picks
 * the level (default info). Written here rather than by pino, whose index loads its transports (worker_threads,
 * thread-stream) and sonic-boom (assert) on every server: ~0.3 MB of an idle `ten serve`'s heap for what a line
 * writer does (bench/README.md "## Footprint"). Any pino logger is a Logger too: tests and plugins may pass one.
 *
 * Each line is written to fd 2 at once, synchronously, whole: nothing is buffered, so nothing is lost at exit,
 * SIGTERM or a crash. A full pipe is waited for up to a second, then lines are dropped until it takes one again;
 * a closed or broken stderr costs the line, never the server.
 */
import { writeSync } from 'node:fs';
import { fieldsJson } from './log-line.ts';
import { isoTime } from './log-time.ts';

export interface LogFn {
  (fields: object | null | undefined, msg?: string): void;
  (msg: string): void;
}

export interface Logger {
  level: string;
  trace: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  fatal: LogFn;
  child(bindings: Record<string, unknown>): Logger;
}

const LEVELS = new Map<string, number>([
  ['trace', 10],
  ['debug', 20],
  ['info', 30],
  ['warn', 40],
  ['error', 50],
  ['fatal', 60],
  ['silent', Number.POSITIVE_INFINITY],
]);
const METHODS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'] as const;

const pause = new Int32Array(new SharedArrayBuffer(4));
/** How long (1 ms waits) a line waits for a full stderr pipe before it is dropped. */
const FULL_PIPE_WAITS = 1000;
/** Set when a line was dropped: until a write goes through again, lines meeting a full pipe drop at once. */
let congested = false;

/** One whole line to fd 2, now. */
export function writeStderr(line: string): void {
  const bytes = Buffer.from(line);
  let written = 0;
  let waits = 0;
  while (written < bytes.length) {
    try {
      written += writeSync(2, bytes, written);
    } catch (error) {
      // EAGAIN: stderr is a non-blocking pipe (libuv made it one) and it is full: wait for its reader, a bounded
      // time, so a stalled reader (a stopped journald) slows the server by at most a second, once. A line half
      // written is finished, so the stream stays lines. Anything else (EPIPE, EBADF): stderr is gone.
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') return;
      if (written === 0 && (congested || waits >= FULL_PIPE_WAITS)) {
        congested = true;
        return;
      }
      waits++;
      Atomics.wait(pause, 0, 0, 1);
    }
  }
  congested = false;
}

function levelValue(level: string): number {
  const value = LEVELS.get(level);
  if (value === undefined) throw new Error(`unknown log level '${level}' (TENEMENT_LOG_LEVEL: one of ${[...LEVELS.keys()].join(', ')})`);
  return value;
}

/** A logger writing lines through `write`; `bindings` is the JSON its child bindings add to every line. */
export function makeLogger(level: string, write: (line: string) => void, time: () => string = isoTime, bindings = ''): Logger {
  let threshold = levelValue(level);
  let name = level;
  const method = (value: number): LogFn =>
    ((first?: unknown, msg?: unknown): void => {
      if (value < threshold) return;
      let line = `{"level":${value},"time":"${time()}"${bindings}`;
      let message = msg;
      if (typeof first === 'string') {
        message = first;
      } else if (first instanceof Error) {
        line += fieldsJson({ err: first });
        message ??= first.message;
      } else if (typeof first === 'object' && first !== null) {
        line += fieldsJson(first);
      }
      if (message !== undefined) line += `,"msg":${JSON.stringify(String(message))}`;
      write(`${line}}\n`);
    }) as LogFn;
  const logger = {
    get level(): string {
      return name;
    },
    set level(next: string) {
      threshold = levelValue(next);
      name = next;
    },
    child: (more: Record<string, unknown>): Logger => makeLogger(name, write, time, bindings + fieldsJson(more)),
  } as Logger;
  for (const key of METHODS) logger[key] = method(LEVELS.get(key)!);
  return logger;
}

/** Tenement's own log, as JSON lines on stderr; TENEMENT_LOG_LEVEL picks the level (default info). */
export function createLogger(level = process.env.TENEMENT_LOG_LEVEL ?? 'info'): Logger {
  return makeLogger(level, writeStderr);
}
