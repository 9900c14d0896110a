import { healthSettings } from '../../core/config/health.ts';
import type { InstanceView } from '../../core/instance.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { definePlugin } from '../../sdk/index.ts';
import { httpCheck, tcpCheck } from './checks.ts';

const NOT_RUNNING = { ok: false, detail: 'instance has no running process' } as const;

/** The `http` and `tcp` checks, which the kernel runs for readiness, the monitor and the API. */
function tapChecks(ctx: PluginContext): void {
  ctx.hooks.health.for('http').tap((instance, probe) =>
    instance.handle ? httpCheck(instance.handle.address, probe) : Promise.resolve(NOT_RUNNING),
  );
  ctx.hooks.health.for('tcp').tap((instance, probe) =>
    instance.handle ? tcpCheck(instance.handle.address, probe) : Promise.resolve(NOT_RUNNING),
  );
}

/**
 * Checks running instances on their interval; after `failures` consecutive failed checks the instance is
 * reported unhealthy, and the supervisor restarts it under its restart policy.
 */
class HealthMonitor {
  private readonly lastCheck = new WeakMap<InstanceView, number>();
  private readonly checking = new WeakSet<InstanceView>();

  constructor(private readonly ctx: PluginContext) {}

  /** Checks every running instance whose interval has passed since its last check (or since it became ready). */
  tick(): void {
    const now = Date.now();
    for (const instance of this.ctx.instances.list({ state: 'running' })) {
      if (this.checking.has(instance)) continue;
      const interval = healthSettings(instance.config, this.ctx.settings).intervalMs;
      const since = Math.max(this.lastCheck.get(instance) ?? 0, instance.readyAt ?? 0);
      if (now - since < interval) continue;
      this.lastCheck.set(instance, now);
      void this.check(instance).catch((error: unknown) => this.ctx.log.error({ instance: instance.key, err: String(error) }, 'health monitor failed'));
    }
  }

  private async check(instance: InstanceView): Promise<void> {
    const { ctx } = this;
    const settings = healthSettings(instance.config, ctx.settings);
    const epoch = instance.epoch;
    this.checking.add(instance);
    try {
      const result = await ctx.checkHealth(instance, settings.timeoutMs);
      // The instance may have been stopped or restarted while the check ran: that answer is about the past.
      if (instance.epoch !== epoch || instance.state !== 'running') return;
      if (result.ok) {
        ctx.lifecycle.markHealthy(instance);
        return;
      }
      const failures = ctx.lifecycle.markCheckFailed(instance);
      ctx.log.warn({ instance: instance.key, detail: result.detail, failures }, 'health check failed');
      if (failures >= settings.failures) {
        await ctx.lifecycle.markUnhealthy(instance, `${failures} failed checks, last: ${result.detail ?? 'failed'}`);
      }
    } finally {
      this.checking.delete(instance);
    }
  }
}

/** The monitor's timer, as fine as the shortest interval of any service (50 ms to 1 s). */
function startMonitor(ctx: PluginContext): void {
  const monitor = new HealthMonitor(ctx);
  const intervals = ctx.services.entries().map(([, service]) => healthSettings(service, ctx.settings).intervalMs);
  const tickMs = Math.max(50, Math.min(1_000, ...intervals));
  const timer = setInterval(() => monitor.tick(), tickMs);
  timer.unref();
  ctx.onClose(() => clearInterval(timer));
}

/**
 * Health checks: `http` (GET the service's health path) and `tcp` (connect) on the health hook, and a monitor
 * that checks running instances on their interval and asks the supervisor to restart one after `failures`
 * consecutive failed checks. The supervisor uses the same checks for readiness.
 */
export default definePlugin({
  name: 'health',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    tapChecks(ctx);
    startMonitor(ctx);
  },
});
