import type { InstanceView } from '../../core/instance.ts';
import type { InstanceState } from '../../core/types.ts';

/** States whose instance can take traffic now or after a wait (wake or restart). */
const WAKEABLE: ReadonlySet<InstanceState> = new Set(['created', 'starting', 'waking', 'restarting', 'hibernated', 'stopped']);

/**
 * Candidates for `{service}.{domain}` in preference order: running instances first, drawn by weight
 * (Efraimidis–Spirakis: sort by random^(1/weight)), then instances that would have to wake. Weight 0 and
 * failed instances are never candidates, so they never get traffic.
 */
export function weightedOrder<T extends InstanceView>(instances: readonly T[], random = Math.random): T[] {
  const running: Array<[number, T]> = [];
  const sleeping: Array<[number, T]> = [];
  for (const instance of instances) {
    if (instance.weight <= 0) continue;
    const key = random() ** (1 / instance.weight);
    if (instance.state === 'running' && instance.handle) running.push([key, instance]);
    else if (WAKEABLE.has(instance.state)) sleeping.push([key, instance]);
  }
  const byKey = (a: [number, T], b: [number, T]): number => b[0] - a[0];
  return [...running.sort(byKey), ...sleeping.sort(byKey)].map(([, instance]) => instance);
}
