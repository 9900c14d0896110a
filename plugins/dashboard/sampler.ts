import type { PluginContext } from '../../core/plugin-context.ts';
import type { EventHub, StatsEntry } from './events.ts';
import { STEP_MS, type HistoryTable } from './history.ts';

/** Stats reads in flight at once: 1,000 instances are read in a few batches, not 1,000 /proc reads at once. */
const BATCH = 32;

/**
 * Every STEP_MS: memory and CPU of each running instance into its history, the same numbers to the event
 * streams, and the histories of instances no longer there dropped.
 */
export function startSampler(ctx: Pick<PluginContext, 'instances' | 'faults' | 'onClose' | 'hooks'>, history: HistoryTable, hub: EventHub): void {
  // Request durations, from the proxy's report of every request (a few typed-array writes each). The time is a
  // clock read twice a second, not per request: a clock read costs more than the rest of `record` on some hosts,
  // and a request counted in the next 10 s bucket half a second early changes no chart.
  let now = Date.now();
  const clock = setInterval(() => (now = Date.now()), 500);
  clock.unref();
  ctx.onClose(() => clearInterval(clock));
  ctx.hooks.request.tap((request) => history.of(request.instance.key).record(request.durationMs, now));
  // Requests an external edge (HAProxy) carried straight to instances, from its counters: at the edge's mean time.
  ctx.hooks.edgeTraffic.tap((traffic) => {
    if (traffic.meanMs !== null) history.of(traffic.instance.key).record(traffic.meanMs, now, traffic.requests);
  });

  let running = false;
  const tick = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      const now = Date.now();
      const views = ctx.instances.list();
      const present = new Set(views.map((view) => view.key));
      for (const key of [...history.keys()]) if (!present.has(key)) history.delete(key);
      const entries: StatsEntry[] = [];
      const live = views.filter((view) => view.state === 'running' && view.handle !== null);
      for (let i = 0; i < live.length; i += BATCH) {
        await Promise.all(
          live.slice(i, i + BATCH).map(async (view) => {
            const stats = await view.handle?.stats().catch(() => null);
            const memoryBytes = stats?.memoryBytes ?? null;
            const cpuSeconds = stats?.cpuSeconds ?? null;
            const own = history.of(view.key);
            const cpu = own.sample(memoryBytes, cpuSeconds, view.epoch, now);
            entries.push({ key: view.key, id: view.id, memoryBytes, cpuSeconds, cpu, rps: own.lastRps(now) });
          }),
        );
      }
      entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
      hub.publishStats(now, entries);
    } catch (error) {
      ctx.faults.record('dashboard:sampler', error);
    } finally {
      running = false;
    }
  };
  const timer = setInterval(() => void tick(), STEP_MS);
  timer.unref();
  ctx.onClose(() => clearInterval(timer));
}
