import { pino, type Logger } from 'pino';

export type { Logger };

/** Tenement's own log, as JSON lines on stderr; TENEMENT_LOG_LEVEL picks the level (default info). */
export function createLogger(level = process.env.TENEMENT_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
}
