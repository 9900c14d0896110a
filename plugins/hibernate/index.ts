import type { PluginContext } from '../../core/plugin-context.ts';
import { definePlugin } from '../../sdk/index.ts';
import { WakeQueues } from './wake-queue.ts';

/** Hibernates every running instance idle for its idleTimeout with no request in flight or waiting. */
function hibernateIdle(ctx: PluginContext, queues: WakeQueues): void {
  const now = Date.now();
  for (const instance of ctx.instances.list({ state: 'running' })) {
    const idleTimeout = instance.config.idleTimeout;
    if (idleTimeout <= 0 || instance.inFlight > 0 || queues.depth(instance) > 0) continue;
    if (now - instance.lastActivity < idleTimeout) continue;
    void ctx.lifecycle
      .hibernate(instance, `idle for ${now - instance.lastActivity}ms`)
      .catch((error: unknown) => ctx.log.error({ instance: instance.key, err: String(error) }, 'hibernate failed'));
  }
}

/** How often to sweep: an instance sleeps within a quarter of its timeout, never busier than 10 times a second. */
function sweepTickMs(ctx: PluginContext): number {
  let shortest = Infinity;
  for (const [, service] of ctx.services.entries()) if (service.idleTimeout > 0) shortest = Math.min(shortest, service.idleTimeout);
  return Number.isFinite(shortest) ? Math.min(5_000, Math.max(100, Math.floor(shortest / 4))) : 5_000;
}

/**
 * The idle sweep, stopped when the server stops. Its pace is worked out again after each round from the services
 * of the moment, so a config reload that adds a service or shortens an idleTimeout is followed.
 */
function startIdleSweep(ctx: PluginContext, queues: WakeQueues): void {
  let timer: NodeJS.Timeout | null = null;
  let closed = false;
  const schedule = (): void => {
    if (closed) return;
    timer = setTimeout(() => {
      hibernateIdle(ctx, queues);
      schedule();
    }, sweepTickMs(ctx));
    timer.unref();
  };
  schedule();
  ctx.onClose(() => {
    closed = true;
    if (timer) clearTimeout(timer);
  });
}

/**
 * `hibernated` and `woken` at info, since they are what an operator watches scale-to-zero by (the kernel logs every
 * transition at debug only): which instance, why it slept, how long its wake took.
 */
function logSleepAndWake(ctx: PluginContext): void {
  ctx.instances.watch((event) => {
    if (event.type === 'hibernated') ctx.log.info({ instance: event.instance, reason: event.reason }, 'hibernated');
    else if (event.type === 'woken') ctx.log.info({ instance: event.instance, reason: event.reason }, 'woken');
  });
}

/**
 * Scale to zero: an instance with no in-flight request for its idleTimeout is stopped and marked
 * `hibernated`; the next request for it waits in a bounded queue while one start runs.
 */
export default definePlugin({
  name: 'hibernate',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    const queues = new WakeQueues(ctx.lifecycle);
    ctx.hooks.wake.tap(({ instance, signal }) => queues.wait(instance, signal));
    startIdleSweep(ctx, queues);
    logSleepAndWake(ctx);
  },
});
