import type { Logger } from './logger.ts';

/** Distinct `where` labels kept; anything beyond is counted under `other` (labels must stay bounded). */
const MAX_PLACES = 64;
/** Log lines per place and window: a plugin that throws on every log line must not flood the server's own log. */
const LOG_BURST = 10;
const LOG_WINDOW_MS = 10_000;

interface Place {
  count: number;
  windowStart: number;
  loggedInWindow: number;
  suppressed: number;
}

/**
 * Unexpected errors that were contained instead of ending the server: a plugin tap that threw, a rejection or
 * exception nothing handled. Each is counted by where it happened (the metrics plugin serves the counts as
 * `tenement_internal_errors_total{where}`) and logged with its stack and context, a burst at a time per place.
 */
export class Faults {
  private readonly places = new Map<string, Place>();

  constructor(private readonly log: Logger) {}

  record(where: string, error: unknown, context: Record<string, unknown> = {}): void {
    const key = this.places.has(where) || this.places.size < MAX_PLACES ? where : 'other';
    let place = this.places.get(key);
    if (!place) {
      place = { count: 0, windowStart: Date.now(), loggedInWindow: 0, suppressed: 0 };
      this.places.set(key, place);
    }
    place.count += 1;
    const now = Date.now();
    if (now - place.windowStart >= LOG_WINDOW_MS) {
      if (place.suppressed > 0) this.log.error({ where: key, suppressed: place.suppressed }, 'internal errors not logged in the last window');
      place.windowStart = now;
      place.loggedInWindow = 0;
      place.suppressed = 0;
    }
    if (place.loggedInWindow >= LOG_BURST) {
      place.suppressed += 1;
      return;
    }
    place.loggedInWindow += 1;
    const err = error instanceof Error ? { message: error.message, code: (error as NodeJS.ErrnoException).code, stack: error.stack } : { message: String(error) };
    this.log.error({ where, ...context, err }, `internal error contained (${where})`);
  }

  /** Count per place, for the metric. */
  counts(): ReadonlyMap<string, number> {
    return new Map([...this.places].map(([where, place]) => [where, place.count]));
  }
}
