import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { InstanceView } from '../../core/instance.ts';
import { statesOtherThan } from '../../core/lifecycle.ts';
import type { Lifecycle } from '../../core/plugin-context.ts';
import type { InstanceState } from '../../core/types.ts';

const DOWN: ReadonlySet<InstanceState> = new Set(['created', 'stopped', 'hibernated']);

/**
 * Requests for an instance that is not running wait here, in a bounded queue per instance, while exactly one
 * start runs. Waiters are released in arrival order when the instance is ready (state listeners fire in the
 * order they were added), or all at once with a 503 when it cannot be woken in time.
 */
export class WakeQueues {
  private readonly waiting = new Map<InstanceView, number>();

  constructor(private readonly lifecycle: Pick<Lifecycle, 'start' | 'failures' | 'isRemoved'>) {}

  depth(instance: InstanceView): number {
    return this.waiting.get(instance) ?? 0;
  }

  async wait(instance: InstanceView, signal?: AbortSignal): Promise<true> {
    if (instance.state === 'running' && instance.handle) return true;
    const config = instance.config;
    const depth = this.depth(instance);
    if (depth >= config.wakeQueue) {
      throw new TenementError(ErrorCodes.WAKE_QUEUE_FULL, `${depth} requests are already waiting for ${instance.key} to wake`, {
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

  private async untilRunning(instance: InstanceView, deadline: number, signal?: AbortSignal): Promise<true> {
    const lifecycle = this.lifecycle;
    // Only a failure of the instance since this request arrived ends the wait early. A stop that is not a
    // failure (an API restart's stop, an API stop) leaves it down too, and then this request simply wakes it
    // again: the restart's own start, if it follows, joins the same spawn, so both end in one running process.
    const failuresAtArrival = lifecycle.failures(instance);
    for (;;) {
      const state = instance.state;
      if (state === 'running' && instance.handle) return true;
      if (state === 'failed') {
        throw new TenementError(ErrorCodes.INSTANCE_FAILED, `${instance.key} has failed: ${instance.lastError ?? 'too many restarts'}; restart it manually`, {
          retryAfter: 30,
        });
      }
      if (DOWN.has(state)) {
        // One start per queue: a start that failed gives every waiter the answer instead of trying once more each.
        if (lifecycle.failures(instance) > failuresAtArrival) {
          throw new TenementError(ErrorCodes.WAKE_FAILED, `${instance.key} could not be woken: ${instance.lastError ?? state}`, {
            retryAfter: 1,
          });
        }
        void lifecycle.start(instance, 'wake');
        // start() moves the state at once unless it refuses: the instance is being removed, or the server stops.
        if (DOWN.has(instance.state)) throw this.refused(instance);
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

  private refused(instance: InstanceView): TenementError {
    const why = this.lifecycle.isRemoved(instance) ? 'it was removed while this request waited' : 'the server is shutting down';
    return new TenementError(ErrorCodes.WAKE_FAILED, `${instance.key} could not be woken: ${why}`, { retryAfter: 5 });
  }

  private timeout(instance: InstanceView): TenementError {
    return new TenementError(
      ErrorCodes.WAKE_TIMEOUT,
      `${instance.key} was not ready within ${instance.config.startupTimeout}ms (state ${instance.state})`,
      { retryAfter: Math.max(1, Math.ceil(instance.config.startupTimeout / 1000)) },
    );
  }
}
