import type { InstanceView } from '../../core/instance.ts';
import type { InstanceDirectory, ServiceDirectory } from '../../core/plugin-context.ts';
import type { Logger } from '../../core/logger.ts';
import type { InstanceEvent } from '../../core/types.ts';
import { SharedFamilies } from './families.ts';
import { fetchExposition, ScrapeError, type FetchFailure } from './fetch.ts';
import { DEFAULT_LIMITS, ExpositionError, parseExpositionAsync, type DropReason, type ParsedFamily } from './parse.ts';
import type { TenantMetricsConfig } from './schema.ts';

export type DropCounter = DropReason | 'conflict';

/** What Tenement knows of one instance's metrics; kept while the instance exists, counters included. */
export interface InstanceRecord {
  readonly service: string;
  readonly instance: string;
  /** The families of the last successful scrape of the current run; empty while not running or after a failure. */
  families: readonly ParsedFamily[];
  series: number;
  scrapedAt: number | null;
  /** null until the first scrape; then whether the last one succeeded. */
  up: boolean | null;
  lastError: string | null;
  lastDurationMs: number | null;
  /** Time the last body took to parse: the next scrape waits at least PARSE_BUDGET times that. */
  lastParseMs: number;
  /** Failed scrapes in a row: each doubles the wait before the next, up to MAX_BACKOFF times the interval. */
  failuresInRow: number;
  readonly dropped: Record<DropCounter, number>;
  readonly failures: Record<FetchFailure, number>;
  /** Last scrape start (ms), so each instance keeps its own interval. */
  startedAt: number;
  inFlight: boolean;
}

/**
 * A tenant whose body takes long to parse is scraped less often: at most every PARSE_BUDGET times its last parse
 * time, so parsing one tenant's metrics takes at most 1/PARSE_BUDGET of Tenement's main thread, however big the
 * body (a 4 MB body of 100,000 series takes about 100 ms: scraped at most every 2 s).
 */
export const PARSE_BUDGET = 20;

/** A failing endpoint (a 50 MB body, garbage, a refused connection) is asked at most this much less often. */
export const MAX_BACKOFF = 16;

/** When an instance is due again: its interval, stretched by its parse cost and its failures in a row. */
export function nextScrapeDelay(record: Pick<InstanceRecord, 'lastParseMs' | 'failuresInRow'>, interval: number): number {
  const backoff = Math.min(MAX_BACKOFF, 2 ** Math.min(record.failuresInRow, 8));
  return Math.max(interval * backoff, record.lastParseMs * PARSE_BUDGET);
}

/** At most this many scrapes run at once, so memory is bounded by it times `maxBytes`, whatever the fleet. */
export const MAX_CONCURRENT_SCRAPES = 8;

/**
 * Scrapes every running instance of a service that declares `metrics`, each on its own interval, on timers of
 * its own: nothing here runs when Tenement's /metrics is scraped, which only reads what is already parsed.
 * Only `running` instances are scraped, on their own listener: a hibernated one is never woken for it. When an
 * instance leaves `running` (stops, hibernates, restarts, fails) or a scrape fails, its series leave /metrics
 * at once, as Prometheus marks a failed target's series stale; its counters stay until it is removed.
 */
export class Scraper {
  readonly records = new Map<string, InstanceRecord>();
  readonly shared: SharedFamilies;
  private running = 0;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly pending = new Set<Promise<void>>();
  private readonly stopping = new AbortController();

  constructor(
    private readonly instances: InstanceDirectory,
    private readonly services: ServiceDirectory,
    shared: SharedFamilies,
    private readonly log: Logger,
  ) {
    this.shared = shared;
  }

  config(service: string): TenantMetricsConfig | undefined {
    return (this.services.get(service) as { metrics?: TenantMetricsConfig } | undefined)?.metrics;
  }

  record(instance: InstanceView): InstanceRecord {
    let record = this.records.get(instance.key);
    if (!record) {
      record = {
        service: instance.service,
        instance: instance.key,
        families: [],
        series: 0,
        scrapedAt: null,
        up: null,
        lastError: null,
        lastDurationMs: null,
        lastParseMs: 0,
        failuresInRow: 0,
        dropped: { limit: 0, duplicate: 0, invalid: 0, conflict: 0 },
        failures: { timeout: 0, connect: 0, status: 0, too_large: 0, content_type: 0, parse: 0 },
        startedAt: 0,
        inFlight: false,
      };
      this.records.set(instance.key, record);
    }
    return record;
  }

  /** Lifecycle events: samples go when the instance stops running, the whole record when it is removed. */
  onEvent(event: InstanceEvent): void {
    const key = event.instance;
    if (event.type === 'removed') return this.forget(key);
    if (event.to !== 'running') this.clear(key);
  }

  start(): void {
    const intervals = this.services.entries().flatMap(([name]) => {
      const config = this.config(name);
      return config ? [config.interval] : [];
    });
    // Always ticking (once a second at most when no service asks for more), so services a config reload adds
    // are scraped too: a tick with nothing due costs one pass over the running instances.
    const tickMs = Math.max(50, Math.min(1_000, ...intervals.map((ms) => Math.floor(ms / 2))));
    this.timer = setInterval(() => this.tick(), tickMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.stopping.abort();
    await Promise.allSettled([...this.pending]);
  }

  /** Starts the scrapes that are due, oldest first, up to the concurrency bound. */
  tick(now = Date.now()): void {
    if (this.closed) return;
    const due: Array<{ instance: InstanceView; record: InstanceRecord; config: TenantMetricsConfig }> = [];
    for (const instance of this.instances.list({ state: 'running' })) {
      const config = this.config(instance.service);
      // A service whose `metrics` a config reload took away: what was scraped of it goes too.
      if (!config && this.records.has(instance.key)) this.forget(instance.key);
      // An in-process instance (the wasm tier) is read through its handle: its functions publish through the SDK.
      if (!config || !instance.handle || (instance.handle.inProcess && !instance.handle.inProcess.metrics)) continue;
      const record = this.record(instance);
      if (record.inFlight || now - record.startedAt < nextScrapeDelay(record, config.interval)) continue;
      due.push({ instance, record, config });
    }
    due.sort((a, b) => a.record.startedAt - b.record.startedAt);
    for (const { instance, record, config } of due) {
      if (this.running >= MAX_CONCURRENT_SCRAPES) break;
      const done = this.scrape(instance, record, config)
        // Only a bug of ours gets here (a tenant's failure is a ScrapeError): logged, never an unhandled rejection.
        .catch((error: unknown) => this.log.error({ instance: instance.key, err: String(error) }, 'tenant metrics scrape failed unexpectedly'))
        .finally(() => this.pending.delete(done));
      this.pending.add(done);
    }
  }

  /** Scrapes one instance now; its answer counts only if the instance is still the same run, still running. */
  async scrape(instance: InstanceView, record: InstanceRecord, config: TenantMetricsConfig): Promise<void> {
    const handle = instance.handle;
    if (!handle) return;
    const epoch = instance.epoch;
    const started = Date.now();
    record.inFlight = true;
    record.startedAt = started;
    this.running++;
    try {
      const inProcess = handle.inProcess;
      const body = inProcess?.metrics ? readPublished(() => inProcess.metrics!(), config.maxBytes) : await fetchExposition(handle.address, { path: config.path, timeoutMs: config.timeout, maxBytes: config.maxBytes, signal: this.stopping.signal });
      const parsing = performance.now();
      let result;
      try {
        result = await parseExpositionAsync(body, { ...DEFAULT_LIMITS, maxSeries: config.maxSeries });
      } finally {
        record.lastParseMs = performance.now() - parsing;
      }
      if (this.stale(instance, epoch, record)) return;
      const conflicts = this.shared.replace(instance.key, { service: instance.service, instance: instance.key }, result.families);
      record.families = result.families;
      record.series = result.series;
      record.scrapedAt = Date.now();
      record.up = true;
      record.lastError = null;
      record.failuresInRow = 0;
      for (const reason of ['limit', 'duplicate', 'invalid'] as const) record.dropped[reason] += result.dropped[reason];
      record.dropped.conflict += conflicts;
    } catch (error) {
      if (this.stale(instance, epoch, record)) return;
      const failure = error instanceof ScrapeError ? error : error instanceof ExpositionError ? new ScrapeError('parse', error.message) : null;
      if (!failure) throw error;
      record.failures[failure.reason]++;
      record.failuresInRow++;
      record.up = false;
      record.lastError = `${failure.reason}: ${failure.message}`;
      this.clear(instance.key);
      this.log.debug({ instance: instance.key, reason: failure.reason, err: failure.message }, 'tenant metrics scrape failed');
    } finally {
      this.running--;
      record.inFlight = false;
      record.lastDurationMs = Date.now() - started;
    }
  }

  private forget(key: string): void {
    this.shared.remove(key);
    this.records.delete(key);
  }

  private stale(instance: InstanceView, epoch: number, record: InstanceRecord): boolean {
    return this.closed || instance.epoch !== epoch || instance.state !== 'running' || this.records.get(instance.key) !== record;
  }

  private clear(key: string): void {
    this.shared.remove(key);
    const record = this.records.get(key);
    if (!record) return;
    record.families = [];
    record.series = 0;
  }
}

/** An in-process instance's own exposition, within the same size bound as a scraped body. */
function readPublished(read: () => string, maxBytes: number): Buffer {
  const body = Buffer.from(read());
  if (body.length > maxBytes) throw new ScrapeError('too_large', `body of ${body.length} bytes, over ${maxBytes}`);
  return body;
}
