import { Counter, Gauge, type Registry } from 'prom-client';
import type { LiveStreams } from './live.ts';
import type { LogStore } from './store.ts';

/** Counters the plugin bumps as it works; gauges below read the store when scraped. */
export interface LogCounters {
  written: Counter;
  deleted: Counter;
  lost: Counter;
}

/** The plugin's Prometheus series on the kernel's registry (served by whichever plugin exposes /metrics). */
export function registerLogMetrics(registry: Registry, store: LogStore, live: LiveStreams): LogCounters {
  new Gauge({
    name: 'tenement_logs_stored_lines',
    help: 'Instance output lines kept in the log store.',
    registers: [registry],
    collect() {
      this.set(store.total.lines);
    },
  });
  new Gauge({
    name: 'tenement_logs_stored_bytes',
    help: 'Bytes the stored lines are charged against the retention budgets (approximate on-disk size).',
    registers: [registry],
    collect() {
      this.set(store.total.bytes);
    },
  });
  new Gauge({
    name: 'tenement_logs_stream_clients',
    help: 'Open live log streams (GET /api/logs/stream).',
    registers: [registry],
    collect() {
      this.set(live.size);
    },
  });
  return {
    written: new Counter({ name: 'tenement_logs_written_lines_total', help: 'Lines written to the log store.', registers: [registry] }),
    deleted: new Counter({ name: 'tenement_logs_deleted_lines_total', help: 'Lines deleted by retention (age or size budgets).', registers: [registry] }),
    lost: new Counter({ name: 'tenement_logs_lost_lines_total', help: 'Lines that could not be written (e.g. disk full).', registers: [registry] }),
  };
}
