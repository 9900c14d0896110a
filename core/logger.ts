import { pino, type Logger } from 'pino';
import { isoTimestamp } from './log-time.ts';

export type { Logger };

/**
 * Tenement's own log, as JSON lines on stderr; TENEMENT_LOG_LEVEL picks the level (default info). The `time` field
 * is pino's isoTime format, written without Date#toISOString (core/log-time.ts: ~1 MB resident less).
 */
export function createLogger(level = process.env.TENEMENT_LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: undefined, timestamp: isoTimestamp }, pino.destination(2));
}
