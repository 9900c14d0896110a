import { healthSettings } from '../../core/config/health.ts';
import type { Instance } from '../../core/instance.ts';
import { definePlugin } from '../../sdk/index.ts';
import { httpCheck, tcpCheck } from './checks.ts';

const NOT_RUNNING = { ok: false, detail: 'instance has no running process' } as const;

/**
 * Health checks: `http` (GET the service's health path) and `tcp` (connect) on the health hook, and a monitor
 * that checks running instances on their interval and asks the supervisor to restart one after `failures`
 * consecutive failed checks. The supervisor uses the same checks for readiness.
 */
export default definePlugin({
  name: 'health',
  version: '1.0.0',
  kernel: '^1',
  setup(kernel) {
    kernel.hooks.health.for('http').tapPromise('health', (instance, probe) =>
      instance.handle ? httpCheck(instance.handle.address, probe) : Promise.resolve(NOT_RUNNING),
    );
    kernel.hooks.health.for('tcp').tapPromise('health', (instance, probe) =>
      instance.handle ? tcpCheck(instance.handle.address, probe) : Promise.resolve(NOT_RUNNING),
    );

    const lastCheck = new WeakMap<Instance, number>();
    const checking = new WeakSet<Instance>();

    const check = async (instance: Instance): Promise<void> => {
      const settings = healthSettings(instance.config, kernel.config.settings);
      const epoch = instance.epoch;
      checking.add(instance);
      try {
        const result = await kernel.checkHealth(instance, settings.timeoutMs);
        // The instance may have been stopped or restarted while the check ran: that answer is about the past.
        if (instance.epoch !== epoch || instance.state !== 'running') return;
        if (result.ok) {
          instance.consecutiveHealthFailures = 0;
          instance.health = 'healthy';
          return;
        }
        instance.consecutiveHealthFailures += 1;
        kernel.log.warn({ instance: instance.key, detail: result.detail, failures: instance.consecutiveHealthFailures }, 'health check failed');
        if (instance.consecutiveHealthFailures >= settings.failures) {
          await kernel.supervisor.unhealthy(instance, `${instance.consecutiveHealthFailures} failed checks, last: ${result.detail ?? 'failed'}`);
        }
      } finally {
        checking.delete(instance);
      }
    };

    const intervals = Object.values(kernel.config.services).map((s) => healthSettings(s, kernel.config.settings).intervalMs);
    const tickMs = Math.max(50, Math.min(1_000, ...intervals));
    const timer = setInterval(() => {
      const now = Date.now();
      for (const instance of kernel.instances.list({ state: 'running' })) {
        if (checking.has(instance)) continue;
        const interval = healthSettings(instance.config, kernel.config.settings).intervalMs;
        const since = Math.max(lastCheck.get(instance) ?? 0, instance.readyAt ?? 0);
        if (now - since < interval) continue;
        lastCheck.set(instance, now);
        void check(instance).catch((error: unknown) => kernel.log.error({ instance: instance.key, err: String(error) }, 'health monitor failed'));
      }
    }, tickMs);
    timer.unref();
    kernel.onClose(() => clearInterval(timer));
  },
});
