import { definePlugin } from '../../sdk/index.ts';
import { WakeQueues } from './wake-queue.ts';

/**
 * Scale to zero: an instance with no in-flight request for its idleTimeout is stopped and marked
 * `hibernated`; the next request for it waits in a bounded queue while one start runs.
 */
export default definePlugin({
  name: 'hibernate',
  version: '1.0.0',
  kernel: '^1',
  setup(kernel) {
    const queues = new WakeQueues(kernel);
    kernel.hooks.wake.tapPromise('hibernate', ({ instance, signal }) => queues.wait(instance, signal));

    const timeouts = Object.values(kernel.config.services).map((s) => s.idleTimeout).filter((t) => t > 0);
    if (timeouts.length === 0) return;
    // Fine enough that an instance sleeps within a quarter of its timeout, never busier than 10 times a second.
    const tickMs = Math.min(5_000, Math.max(100, Math.floor(Math.min(...timeouts) / 4)));
    const timer = setInterval(() => {
      const now = Date.now();
      for (const instance of kernel.instances.list({ state: 'running' })) {
        const idleTimeout = instance.config.idleTimeout;
        if (idleTimeout <= 0 || instance.inFlight > 0 || queues.depth(instance) > 0) continue;
        if (now - instance.lastActivity < idleTimeout) continue;
        void kernel.hibernate(instance, `idle for ${now - instance.lastActivity}ms`).catch((error: unknown) =>
          kernel.log.error({ instance: instance.key, err: String(error) }, 'hibernate failed'),
        );
      }
    }, tickMs);
    timer.unref();
    kernel.onClose(() => clearInterval(timer));
  },
});
