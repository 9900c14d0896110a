import { healthSettings } from './config/health.ts';
import type { Instance } from './instance.ts';
import type { Kernel } from './kernel.ts';

/**
 * Readiness is polled every few milliseconds while a start is young (a failed connect to a port nobody listens
 * on costs microseconds, and every millisecond of lag is added to a cold wake), then less often for slow
 * starters.
 */
const READY_POLL_FAST_MS = 3;
const READY_POLL_FAST_FOR_MS = 3_000;
const READY_POLL_SLOW_MS = 50;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls the service's health check until it passes (true), or the deadline passes, the run's process exits or
 * a stop bumps the instance's epoch (false).
 */
export async function waitReady(
  kernel: Kernel,
  instance: Instance,
  epoch: number,
  deadline: number,
  exitedEarly: Promise<void>,
  hasExited: () => boolean,
): Promise<boolean> {
  const check = healthSettings(instance.config, kernel.config.settings);
  // An instance living in this process (the wasm tier) listened before its spawn resolved, and the proxy hands it
  // requests directly: a tcp check would only connect to our own listener, a loopback round trip on every wake.
  if (check.kind === 'tcp' && instance.handle?.inProcess) return !hasExited() && epoch === instance.epoch;
  const fastUntil = Date.now() + READY_POLL_FAST_FOR_MS;
  while (Date.now() < deadline && epoch === instance.epoch && !hasExited()) {
    const timeout = Math.max(1, Math.min(check.timeoutMs, deadline - Date.now()));
    const result = await kernel.checkHealth(instance, timeout);
    if (result.ok) return !hasExited() && epoch === instance.epoch;
    const pause = Date.now() < fastUntil ? READY_POLL_FAST_MS : READY_POLL_SLOW_MS;
    const wait = Math.min(pause, Math.max(0, deadline - Date.now()));
    await Promise.race([sleep(wait), exitedEarly]);
  }
  return false;
}
