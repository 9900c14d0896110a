import { errorMessage } from '../../core/errors.ts';
import { definePlugin } from '../../sdk/index.ts';
import { LiveStreams } from './live.ts';
import { registerLogMetrics, type LogCounters } from './metrics.ts';
import { resolveOptions, type LogsOptions } from './options.ts';
import { Retention } from './retention.ts';
import { registerRoutes } from './routes.ts';
import { LogStore } from './store.ts';
import { LogWriter } from './writer.ts';

export type { LogsOptions } from './options.ts';

/**
 * Persistent, searchable instance logs: every line on the `log` hook is written (in batches) to the state
 * database with a full-text index, kept within size and age budgets, and served by GET /api/logs (query) and
 * GET /api/logs/stream (live Server-Sent Events). See docs/logs.md.
 */
export default definePlugin<LogsOptions | undefined>({
  name: 'logs',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    const options = resolveOptions(ctx.config);
    const store = LogStore.open(ctx.store);
    const live = new LiveStreams(options.keepAliveMs);
    let counters: LogCounters | null = null;
    let open = true;

    const retention = new Retention(
      store,
      { maxBytes: options.maxBytes, maxAgeMs: options.maxAgeMs, perInstanceMaxBytes: options.perInstanceMaxBytes },
      {
        onDeleted: (lines) => counters?.deleted.inc(lines),
        onError: (error) => ctx.log.warn({ err: errorMessage(error) }, 'log retention failed'),
      },
    );
    const writer = new LogWriter(store, {
      flushMs: options.flushMs,
      flushLines: options.flushLines,
      onFlush: (lines) => {
        counters?.written.inc(lines);
        if (open && retention.overBudget()) void retention.enforce();
      },
      onError: (error, dropped) => {
        counters?.lost.inc(dropped);
        ctx.log.warn({ err: errorMessage(error), lines: dropped }, 'could not store instance log lines');
      },
    });

    ctx.hooks.log.tap((instance, entry) => {
      const record = { at: entry.at, service: instance.service, id: instance.id, stream: entry.stream, line: entry.line };
      writer.add(record);
      live.publish(record);
    });
    ctx.hooks.metrics.tap((registry) => {
      counters = registerLogMetrics(registry, store, live);
    });
    registerRoutes(ctx.api, { store, writer, live, isOpen: () => open });

    // Age limits need a clock even when nothing is logged; the first run also trims what a previous run left.
    const timer = setInterval(() => void retention.enforce(), options.retentionMs);
    timer.unref();
    void retention.enforce();

    // Closers run after every instance has stopped (their last lines are captured) and before the store closes.
    ctx.onClose(async () => {
      open = false;
      clearInterval(timer);
      live.closeAll();
      await retention.stop();
      writer.close();
    });
  },
});
