import { ErrorCodes, TenementError } from './errors.ts';
import type { KernelHooks } from './hooks.ts';
import type { Instance } from './instance.ts';
import type { ProxyExchange } from './types.ts';

/** Whoever waits for the wake: the client's socket or response, whose close abandons the wait. */
export interface WaitingClient {
  readonly destroyed: boolean;
  once(event: 'close', listener: () => void): unknown;
  removeListener(event: 'close', listener: () => void): unknown;
}

/**
 * Brings a non-running instance up for a waiting request through the `wake` hook. The wait is abandoned when
 * `client` closes, so a caller that gave up does not hold a place in the wake queue. The close listener is
 * removed when the wait ends: a kept-alive connection sees many wakes.
 */
export async function wakeForRequest(
  hooks: KernelHooks,
  instance: Instance,
  client: WaitingClient,
  exchange?: ProxyExchange,
): Promise<void> {
  const abort = new AbortController();
  const onClose = (): void => abort.abort(new Error('client went away'));
  client.once('close', onClose);
  let woken: boolean | undefined;
  try {
    woken = await hooks.wake.promise(exchange ? { instance, signal: abort.signal, exchange } : { instance, signal: abort.signal });
  } finally {
    client.removeListener('close', onClose);
  }
  if (woken !== true || !instance.handle) {
    throw new TenementError(ErrorCodes.WAKE_FAILED, `${instance.key} is ${instance.state} and nothing woke it`, {
      retryAfter: 1,
    });
  }
}
