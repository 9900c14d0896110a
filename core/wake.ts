import { ErrorCodes, TenementError } from './errors.ts';
import type { KernelHooks } from './hooks.ts';
import type { Instance } from './instance.ts';

/**
 * Brings a non-running instance up for a waiting request through the `wake` hook. The wait is abandoned when
 * `client` closes, so a caller that gave up does not hold a place in the wake queue.
 */
export async function wakeForRequest(
  hooks: KernelHooks,
  instance: Instance,
  client: { once(event: 'close', listener: () => void): unknown },
): Promise<void> {
  const abort = new AbortController();
  client.once('close', () => abort.abort(new Error('client went away')));
  const woken = await hooks.wake.promise({ instance, signal: abort.signal });
  if (woken !== true || !instance.handle) {
    throw new TenementError(ErrorCodes.WAKE_FAILED, `${instance.key} is ${instance.state} and nothing woke it`, {
      status: 503,
      retryAfter: 1,
    });
  }
}
