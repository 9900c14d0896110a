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

/** The idle sweep, when some service has an idleTimeout: stopped when the server stops. */
function startIdleSweep(ctx: PluginContext, queues: WakeQueues): void {
  const timeouts = ctx.services
    .entries()
    .map(([, service]) => service.idleTimeout)
    .filter((t) => t > 0);
  if (timeouts.length === 0) return;
  // Fine enough that an instance sleeps within a quarter of its timeout, never busier than 10 times a second.
  const tickMs = Math.min(5_000, Math.max(100, Math.floor(Math.min(...timeouts) / 4)));
  const timer = setInterval(() => hibernateIdle(ctx, queues), tickMs);
  timer.unref();
  ctx.onClose(() => clearInterval(timer));
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
  },
});
