/**
 * Load balancing for `{service}.{domain}`: the one place the order of a weighted service's candidates is
 * decided, per request, by the built-in router in the kernel's process and by each proxy worker over its mirror
 * (docs/lb.md). A service's `lb` picks the rule:
 *
 *  - `weighted` (default): drawn by weight (Efraimidis–Spirakis: sort by random^(1/weight));
 *  - `least-requests`: fewest requests in flight first, ties to the higher weight, then round-robin;
 *  - `p2c`: two drawn by weight, the one with fewer in flight per unit of weight first (power of two choices).
 *
 * In flight means what this process counts (`InstanceView.inFlight`): a proxy worker balances with its own
 * counts; the kernel's process with its own plus the workers' last reports (at most 50 ms old).
 *
 * Only running instances are balanced over; instances that would have to wake come after them (the proxy
 * wakes the first when no running one is left), drawn by weight. Weight 0 and failed instances are never
 * candidates. An unhealthy instance leaves `running` the moment the supervisor declares it so.
 */
import type { InstanceView } from '../instance.ts';
import type { InstanceState } from '../types.ts';

export const LB_MODES = ['weighted', 'least-requests', 'p2c'] as const;
export type LbMode = (typeof LB_MODES)[number];

/** States whose instance can take traffic after a wait (wake or restart). */
const WAKEABLE: ReadonlySet<InstanceState> = new Set(['created', 'starting', 'waking', 'restarting', 'hibernated', 'stopped']);

/** Services whose round-robin position is remembered; past it the table starts over (ties restart at the first). */
const MAX_SERVICES = 4096;
/** Per service, where `least-requests` starts among ties. A Map: a service named `__proto__` is just a key. */
const turns = new Map<string, number>();

type Keyed<T> = [number, T];
const byKey = (a: Keyed<InstanceView>, b: Keyed<InstanceView>): number => b[0] - a[0];

/** A count as a number of requests: never below 0 (a worker's report may lag a finish). */
const held = (instance: InstanceView): number => (instance.inFlight > 0 ? instance.inFlight : 0);
/** `least-requests`: fewest in flight, then the higher weight, then the rotated position (the key). */
const fewestFirst = (a: Keyed<InstanceView>, b: Keyed<InstanceView>): number => held(a[1]) - held(b[1]) || b[1].weight - a[1].weight || a[0] - b[0];

/**
 * Candidates of `{service}.{domain}` in preference order under `lb`: the running instances as the rule orders
 * them, then the ones that would have to wake, by weight. `instances` is the service's; `random` for tests.
 */
export function balance<T extends InstanceView>(lb: LbMode, service: string, instances: readonly T[], random = Math.random): T[] {
  const running: Array<Keyed<T>> = [];
  const sleeping: Array<Keyed<T>> = [];
  for (const instance of instances) {
    if (instance.weight <= 0) continue;
    const key = random() ** (1 / instance.weight);
    if (instance.state === 'running' && instance.handle) running.push([key, instance]);
    else if (WAKEABLE.has(instance.state)) sleeping.push([key, instance]);
  }
  if (lb === 'least-requests') leastRequests(service, running);
  else {
    running.sort(byKey);
    if (lb === 'p2c' && running.length > 1) twoChoices(running);
  }
  sleeping.sort(byKey);
  const order: T[] = new Array<T>(running.length + sleeping.length);
  for (let i = 0; i < running.length; i++) order[i] = running[i]![1];
  for (let i = 0; i < sleeping.length; i++) order[running.length + i] = sleeping[i]![1];
  return order;
}

/** `weighted`, as it always was: `balance('weighted', …)` without a service name. */
export function weightedOrder<T extends InstanceView>(instances: readonly T[], random = Math.random): T[] {
  return balance('weighted', '', instances, random);
}

/**
 * Power of two choices over the weighted draw: its first two are two instances drawn by weight without
 * replacement; the one with fewer requests in flight per unit of weight goes first. On a tie (two idle
 * instances) the first drawn stays first, so idle instances share by weight. The rest keep the draw's order.
 */
function twoChoices<T extends InstanceView>(running: Array<Keyed<T>>): void {
  const first = running[0]![1];
  const second = running[1]![1];
  // held / weight compared without dividing.
  if (held(second) * first.weight < held(first) * second.weight) {
    const swap = running[0]!;
    running[0] = running[1]!;
    running[1] = swap;
  }
}

/**
 * Fewest in flight first, then the higher weight; instances equal on both take turns: the keys are replaced
 * by positions rotated one step per request of the service, the last tie-break.
 */
function leastRequests<T extends InstanceView>(service: string, running: Array<Keyed<T>>): void {
  const n = running.length;
  if (n === 0) return;
  // The service's instances may have changed since its last turn.
  const turn = (turns.get(service) ?? 0) % n;
  if (!turns.has(service) && turns.size >= MAX_SERVICES) turns.clear();
  turns.set(service, turn + 1 === n ? 0 : turn + 1);
  for (let i = 0; i < n; i++) {
    const position = i - turn;
    running[i]![0] = position < 0 ? position + n : position;
  }
  running.sort(fewestFirst);
}
