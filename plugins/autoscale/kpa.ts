/**
 * The decision, in the spirit of Knative's KPA, as pure functions over one service's samples: the average of the
 * stable window decides desired = ceil(avg / target); the panic window (shorter) reacts to a burst; scale-down
 * waits until the lower count has been wanted for scaleDownDelay. No timers, no instances: the controller
 * samples, calls `decide` and acts (plugins/autoscale/controller.ts).
 */
import type { ScaleConfig } from './schema.ts';

/** Panic when the panic window wants at least this many times the replicas ready now (KPA's 200%). */
export const PANIC_RATIO = 2;

/** A bounded ring of timed values, oldest first; past its capacity the oldest goes. */
export class Ring {
  readonly #at: Float64Array;
  readonly #value: Float64Array;
  #start = 0;
  #size = 0;

  constructor(readonly capacity: number) {
    this.#at = new Float64Array(capacity);
    this.#value = new Float64Array(capacity);
  }

  get size(): number {
    return this.#size;
  }

  push(at: number, value: number): void {
    const index = (this.#start + this.#size) % this.capacity;
    this.#at[index] = at;
    this.#value[index] = value;
    if (this.#size < this.capacity) this.#size += 1;
    else this.#start = (this.#start + 1) % this.capacity;
  }

  /** When the oldest value was pushed (Infinity when empty). */
  oldest(): number {
    return this.#size === 0 ? Infinity : this.#at[this.#start]!;
  }

  /** Mean and max of the values pushed at or after `since` (0 and 0 when none). */
  over(since: number): { mean: number; max: number; count: number } {
    let sum = 0;
    let max = 0;
    let count = 0;
    for (let i = 0; i < this.#size; i++) {
      const index = (this.#start + i) % this.capacity;
      if (this.#at[index]! < since) continue;
      const value = this.#value[index]!;
      sum += value;
      if (value > max) max = value;
      count += 1;
    }
    return { mean: count === 0 ? 0 : sum / count, max, count };
  }
}

/** What one service's decisions remember between ticks. */
export interface KpaState {
  /** The metric, one value per sample (in flight summed over the pool, or requests finished in that second). */
  samples: Ring;
  /** The desired counts decided, for the scale-down delay. */
  desired: Ring;
  /** Panic lasts until then (a stable window after its last trigger), 0 when calm. */
  panicUntil: number;
}

export function kpaState(config: ScaleConfig, sampleMs: number): KpaState {
  const slots = (ms: number): number => Math.max(2, Math.ceil(ms / sampleMs) + 1);
  return { samples: new Ring(slots(config.window)), desired: new Ring(slots(config.scaleDownDelay)), panicUntil: 0 };
}

export interface Decision {
  metric: ScaleConfig['metric'];
  /** The stable window's average of the metric, and the panic window's. */
  stableValue: number;
  panicValue: number;
  panicking: boolean;
  /** Replicas ready (or starting) when deciding. */
  current: number;
  /** What the load asks for, clamped to [min, max], before the scale-down delay and the host's ceiling. */
  wanted: number;
  /** The count to reach. */
  desired: number;
  /** Why `desired` is not `wanted`, when it is not ('scale-down delay', 'panic: never down'). */
  held: string | null;
}

/**
 * The count the service should have now. `current` counts the replicas serving or on their way; `ready` those
 * serving (the panic ratio is against them, as KPA's).
 */
export function decide(state: KpaState, config: ScaleConfig, now: number, current: number, ready: number): Decision {
  const stable = state.samples.over(now - config.window);
  const panic = state.samples.over(now - config.panicWindow);
  const stableWanted = Math.ceil(stable.mean / config.target - 1e-9);
  const panicWanted = Math.ceil(panic.mean / config.target - 1e-9);
  if (panicWanted >= PANIC_RATIO * Math.max(ready, 1) && panicWanted > current) state.panicUntil = now + config.window;
  const panicking = now < state.panicUntil;
  const clamp = (n: number): number => Math.min(config.max, Math.max(config.min, n));
  let held: string | null = null;
  // Panicking: the panic window's count (a burst), and never fewer than now.
  const wanted = clamp(panicking ? Math.max(panicWanted, stableWanted) : stableWanted);
  let desired = wanted;
  if (panicking && desired < current) {
    desired = Math.min(config.max, current);
    held = 'panic: never down';
  }
  state.desired.push(now, desired);
  if (desired < current) {
    // Down only once the lower count has been wanted for the whole delay: the highest count of the delay wins.
    const recent = state.desired.over(now - config.scaleDownDelay);
    const covered = state.desired.oldest() <= now - config.scaleDownDelay;
    const floor = covered ? recent.max : current;
    if (floor > desired) {
      desired = Math.min(current, floor);
      held = 'scale-down delay';
    }
  }
  return { metric: config.metric, stableValue: stable.mean, panicValue: panic.mean, panicking, current, wanted, desired, held };
}
