/**
 * `proxy.pin: 'busy'` (the default): while a proxy process's event loop is busy, its main thread stays on the
 * CPU it runs on; when the load ends, or something else keeps needing that CPU, it may move again.
 *
 * Why: left free, the scheduler moves a busy proxy's main thread between cores (towards whichever woke it: the
 * client, the instance), and each move starts it on a cold cache. Node's working set (its JIT code, the heap's
 * young generation, the connections' buffers) is megabytes, so on the 2-core development host, when the
 * scheduler placed it badly, a request cost 47-77 µs of CPU free against 41-43 µs pinned, with throughput
 * 0.57-0.83x nginx's free against 0.89-0.98x pinned (bench/README.md, Proxy: session 16). nginx's working set is
 * small enough that it barely notices (26-39 µs free, 28-31 pinned).
 *
 * Only the main thread is pinned: V8's helper threads and libuv's pool stay free, and so does everything the
 * process starts (core/process/affinity.ts: `unpinnedWhile` for processes, a sweep each sample for threads).
 * Nothing is pinned while the loop is quiet, so an idle server holds no core, and a pinned thread that keeps
 * waiting for its CPU (a tenant's work that cannot move, another pinned proxy) is let go and not pinned again
 * for a while.
 */
import { readFileSync } from 'node:fs';
import type { Logger } from '../logger.ts';
import { affinitySupported, currentCpu, notePinned, releaseThreadsPinnedTo, setThreadCpus, threadCpus, threadIds } from '../process/affinity.ts';
import { eluMeter } from './workers/spill.ts';

export type PinMode = 'busy' | 'off';

export interface PinThresholds {
  /** Event-loop utilization at or above which a sample counts as busy. */
  busy: number;
  /** Consecutive busy samples before the main thread is pinned. */
  pinAfter: number;
  /** Utilization below which a sample counts as quiet. */
  quiet: number;
  /** Consecutive quiet samples before the pin is let go. */
  unpinAfter: number;
  /** Share of a sample's time the pinned thread spent waiting for its CPU at or above which that CPU is crowded. */
  crowded: number;
  /** Consecutive crowded samples before the pin is let go. */
  crowdedAfter: number;
  /**
   * Samples after letting go of a crowded CPU before pinning again; doubled after each crowded pin in a row (up to
   * 64 times), so a tenant that keeps its own work on whatever CPU the proxy pins to only makes it stop trying.
   */
  holdOff: number;
}

/** Over 100 ms samples: pinned after one busy sample, let go after 5 s quiet, or after 1 s crowded (then not pinned again for 5 s, doubling). */
export const DEFAULT_PIN: PinThresholds = { busy: 0.5, pinAfter: 1, quiet: 0.2, unpinAfter: 50, crowded: 0.25, crowdedAfter: 10, holdOff: 50 };
export const PIN_SAMPLE_MS = 100;

/** 'crowded': let go because the CPU was crowded (then not pinned again for `holdOff` samples); 'unpin': because the load ended. */
export type PinDecision = 'pin' | 'unpin' | 'crowded' | null;

/** The decision over one sample at a time: the loop's utilization and the share of the sample spent waiting for a CPU. */
export class PinPolicy {
  private busyRun = 0;
  private quietRun = 0;
  private crowdedRun = 0;
  private held = 0;
  private nextHoldOff: number;

  constructor(private readonly thresholds: PinThresholds = DEFAULT_PIN) {
    this.nextHoldOff = thresholds.holdOff;
  }

  sample(elu: number, waiting: number, pinned: boolean): PinDecision {
    const t = this.thresholds;
    const utilization = Number.isFinite(elu) ? elu : 0;
    this.busyRun = utilization >= t.busy ? this.busyRun + 1 : 0;
    this.quietRun = utilization < t.quiet ? this.quietRun + 1 : 0;
    this.crowdedRun = pinned && Number.isFinite(waiting) && waiting >= t.crowded ? this.crowdedRun + 1 : 0;
    if (this.held > 0) this.held -= 1;
    if (pinned) {
      if (this.crowdedRun >= t.crowdedAfter) {
        this.reset();
        this.held = this.nextHoldOff;
        this.nextHoldOff = Math.min(this.nextHoldOff * 2, t.holdOff * 64);
        return 'crowded';
      }
      if (this.quietRun >= t.unpinAfter) {
        // A pin that lasted until the load ended: the CPU was not contested, the hold-off starts over.
        this.reset();
        this.nextHoldOff = t.holdOff;
        return 'unpin';
      }
      return null;
    }
    if (this.held === 0 && this.busyRun >= t.pinAfter) {
      this.reset();
      return 'pin';
    }
    return null;
  }

  private reset(): void {
    this.busyRun = 0;
    this.quietRun = 0;
    this.crowdedRun = 0;
  }
}

/** Nanoseconds the main thread has spent waiting on a run queue (schedstat's second field), or NaN. */
function mainThreadWaitNanos(): number {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'latin1').split(' ', 2)[1]);
  } catch {
    return Number.NaN;
  }
}

export interface PinState {
  /** The CPU the main thread is pinned to, or -1. */
  cpu: number;
  pins: number;
  /** Pins let go because the CPU was crowded. */
  crowded: number;
  /** Threads started while pinned whose inherited pin was lifted. */
  threadsReleased: number;
}

export interface CpuPinning {
  state(): PinState;
  stop(): void;
}

export interface CpuPinningOptions {
  log: Logger;
  sampleMs?: number;
  thresholds?: PinThresholds;
}

/** Starts sampling; null when this process cannot pin (not Linux, no libc binding, a single CPU allowed). */
export function startCpuPinning(options: CpuPinningOptions): CpuPinning | null {
  if (!affinitySupported()) {
    options.log.debug('proxy.pin: thread affinity is not available here; the proxy is not pinned');
    return null;
  }
  const startMask = threadCpus(0);
  if (startMask === null || startMask.length < 2) return null;
  const sampleMs = options.sampleMs ?? PIN_SAMPLE_MS;
  const policy = new PinPolicy(options.thresholds);
  const elu = eluMeter();
  const state: PinState = { cpu: -1, pins: 0, crowded: 0, threadsReleased: 0 };
  let whole: readonly number[] = startMask;
  let known = new Set<number>();
  let lastWait = mainThreadWaitNanos();
  let lastAt = performance.now();

  const unpin = (why: 'quiet' | 'crowded', waiting: number): void => {
    setThreadCpus(0, whole);
    notePinned(null);
    state.threadsReleased += releaseThreadsPinnedTo([state.cpu], whole, known);
    options.log.debug({ cpu: state.cpu, why, waiting: Math.round(waiting * 100) / 100 }, 'proxy.pin: event loop unpinned');
    if (why === 'crowded') state.crowded += 1;
    state.cpu = -1;
  };

  const pin = (utilization: number): void => {
    const mask = threadCpus(0);
    const cpu = currentCpu();
    if (mask === null || mask.length < 2 || !mask.includes(cpu) || !setThreadCpus(0, [cpu])) return;
    whole = mask;
    known = new Set(threadIds());
    notePinned(whole);
    state.cpu = cpu;
    state.pins += 1;
    options.log.debug({ cpu, elu: Math.round(utilization * 100) / 100 }, 'proxy.pin: busy event loop pinned to its CPU');
  };

  const timer = setInterval(() => {
    const now = performance.now();
    const wait = mainThreadWaitNanos();
    const waiting = (wait - lastWait) / 1e6 / Math.max(1, now - lastAt);
    lastWait = wait;
    lastAt = now;
    const utilization = elu();
    const pinned = state.cpu >= 0;
    if (pinned) state.threadsReleased += releaseThreadsPinnedTo([state.cpu], whole, known);
    const decision = policy.sample(utilization, waiting, pinned);
    if (decision === 'pin') pin(utilization);
    else if (decision !== null) unpin(decision === 'crowded' ? 'crowded' : 'quiet', waiting);
  }, sampleMs);
  timer.unref();

  return {
    state: () => ({ ...state }),
    stop() {
      clearInterval(timer);
      if (state.cpu >= 0) unpin('quiet', 0);
    },
  };
}
