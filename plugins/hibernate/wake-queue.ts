import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { Instance } from '../../core/instance.ts';
import type { Kernel } from '../../core/kernel.ts';
import { statesOtherThan } from '../../core/lifecycle.ts';
import type { InstanceState } from '../../core/types.ts';

const DOWN: ReadonlySet<InstanceState> = new Set(['created', 'stopped', 'hibernated']);

/**
 * Requests for an instance that is not running wait here, in a bounded queue per instance, while exactly one
 * start runs. Waiters are released in arrival order when the instance is ready (state listeners fire in the
 * order they were added), or all at once with a 503 when it cannot be woken in time.
 */
export class WakeQueues {
  private readonly waiting = new Map<Instance, number>();
  /** Starts asked for by waiters, per instance: a waiter whose arrival predates a failed start gives up. */
  private readonly attempts = new WeakMap<Instance, number>();

  constructor(private readonly kernel: Kernel) {}

  depth(instance: Instance): number {
    return this.waiting.get(instance) ?? 0;
  }

  async wait(instance: Instance, signal?: AbortSignal): Promise<true> {
    if (instance.state === 'running' && instance.handle) return true;
    const config = instance.config;
    const depth = this.depth(instance);
    if (depth >= config.wakeQueue) {
      throw new TenementError(ErrorCodes.WAKE_QUEUE_FULL, `${depth} requests are already waiting for ${instance.key} to wake`, {
        status: 503,
        retryAfter: Math.max(1, Math.ceil(config.startupTimeout / 1000)),
      });
    }
    this.waiting.set(instance, depth + 1);
    try {
      return await this.untilRunning(instance, Date.now() + config.startupTimeout, signal);
    } finally {
      const left = this.depth(instance) - 1;
      if (left > 0) this.waiting.set(instance, left);
      else this.waiting.delete(instance);
    }
  }

  private async untilRunning(instance: Instance, deadline: number, signal?: AbortSignal): Promise<true> {
    const attemptsAtArrival = this.attempts.get(instance) ?? 0;
    for (;;) {
      const state = instance.state;
      if (state === 'running' && instance.handle) return true;
      if (state === 'failed') {
        throw new TenementError(ErrorCodes.INSTANCE_FAILED, `${instance.key} has failed: ${instance.lastError ?? 'too many restarts'}; restart it manually`, {
          status: 503,
          retryAfter: 30,
        });
      }
      if (DOWN.has(state)) {
        // One start per queue: if a start was asked for since this request arrived and the instance is down
        // again, that start failed, and every waiter gets the answer instead of trying once more each.
        const attempts = this.attempts.get(instance) ?? 0;
        if (attempts > attemptsAtArrival) {
          throw new TenementError(ErrorCodes.WAKE_FAILED, `${instance.key} could not be woken: ${instance.lastError ?? state}`, {
            status: 503,
            retryAfter: 1,
          });
        }
        this.attempts.set(instance, attempts + 1);
        void this.kernel.supervisor.start(instance, 'wake');
        continue;
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw this.timeout(instance);
      try {
        await instance.waitForState(statesOtherThan(state), remaining, signal);
      } catch (error) {
        if (signal?.aborted) throw error;
        throw this.timeout(instance);
      }
    }
  }

  private timeout(instance: Instance): TenementError {
    return new TenementError(
      ErrorCodes.WAKE_TIMEOUT,
      `${instance.key} was not ready within ${instance.config.startupTimeout}ms (state ${instance.state})`,
      { status: 503, retryAfter: Math.max(1, Math.ceil(instance.config.startupTimeout / 1000)) },
    );
  }
}
