/**
 * Who gets the pool's next free thread. Each caller key (a tenant's `fn/<service>:<id>`, a plugin's
 * `plugin/<name>`) has its own lane: at most `perKey` of its calls run at once, the rest wait in the lane, and
 * a free thread goes to the waiting lane served least recently. So a runaway tenant queues behind itself,
 * never in front of others, and (with `perKey` below the thread count) always leaves a thread to the others.
 *
 * The common case costs no allocation beyond the lane: a call that finds a thread free and its lane under its
 * share takes it at once (`enter`); only a call that must wait gets a promise and a deadline listener.
 */
import type { Deadline } from './deadline.ts';

interface Waiter {
  lane: Lane;
  deadline: Deadline;
  resolve: (lane: Lane | null) => void;
  onAbort: () => void;
}

export class Lane {
  running = 0;
  /** When this lane last got a thread (the scheduler's grant count); a new lane has never had one. */
  servedAt = 0;
  readonly waiting: Waiter[] = [];
  /** Set by `hold`: the lane takes no thread until this has run, once none of its calls runs. */
  cleanup: (() => void) | null = null;
  constructor(readonly key: string) {}
}

/** How long a held lane waits, once its calls ended, for a terminated worker's thread to be gone. */
const SETTLE_MS = 100;

export class FairShare {
  /** Calls holding a thread now. */
  running = 0;
  /** Calls waiting in lanes now. */
  waiting = 0;
  /** Lanes with a call running or waiting, by key; an idle lane is forgotten. */
  private readonly lanes = new Map<string, Lane>();
  /** Lanes with waiting calls. */
  private readonly ring: Lane[] = [];
  private grants = 0;

  constructor(
    /** Threads of the pool. */
    readonly slots: number,
    /** Threads one key may hold at once. */
    readonly perKey: number,
  ) {}

  /**
   * Takes a thread for `key` now when that is fair, else null (then `wait`). Fair means a thread is free and
   * the key is under its share: every waiting call belongs to a lane at its share (a free thread would have
   * gone to it), so taking the thread passes no one.
   */
  enter(key: string): Lane | null {
    if (this.running >= this.slots) return null;
    let lane = this.lanes.get(key);
    if (lane === undefined) {
      lane = new Lane(key);
      this.lanes.set(key, lane);
    } else if (lane.running >= this.perKey || lane.cleanup !== null) {
      return null;
    }
    lane.running++;
    this.running++;
    lane.servedAt = ++this.grants;
    return lane;
  }

  /** Waits in `key`'s lane for a thread; null when the deadline passes first (the call never ran). */
  wait(key: string, deadline: Deadline): Promise<Lane | null> {
    let lane = this.lanes.get(key);
    if (lane === undefined) {
      lane = new Lane(key);
      this.lanes.set(key, lane);
    }
    const target = lane;
    return new Promise<Lane | null>((resolve) => {
      const waiter: Waiter = { lane: target, deadline, resolve, onAbort: () => this.abandon(waiter) };
      if (target.waiting.push(waiter) === 1) this.ring.push(target);
      this.waiting++;
      deadline.once('abort', waiter.onAbort);
      // A thread may be free for this key already (its share was full when it asked, a call ended since).
      this.pump();
    });
  }

  /**
   * Keeps `lane` from running anything until `cleanup` has run, which happens once none of its calls runs
   * (and a moment later, for a terminated worker's thread to be gone): a tenant's leftovers are swept while
   * nothing of that tenant can be using them.
   */
  hold(lane: Lane, cleanup: () => void): void {
    const earlier = lane.cleanup;
    lane.cleanup = earlier === null ? cleanup : () => (earlier(), cleanup());
  }

  /** A call that held a thread ended: the thread goes to the next lane in turn. */
  leave(lane: Lane): void {
    lane.running--;
    this.running--;
    if (lane.running === 0) {
      if (lane.cleanup !== null) setTimeout(() => this.release(lane), SETTLE_MS).unref();
      else if (lane.waiting.length === 0) this.lanes.delete(lane.key);
    }
    if (this.waiting > 0) this.pump();
  }

  private release(lane: Lane): void {
    const cleanup = lane.cleanup;
    lane.cleanup = null;
    try {
      cleanup?.();
    } finally {
      if (lane.running === 0 && lane.waiting.length === 0) this.lanes.delete(lane.key);
      this.pump();
    }
  }

  private pump(): void {
    while (this.running < this.slots && this.ring.length > 0) {
      let best = -1;
      for (let at = 0; at < this.ring.length; at++) {
        const lane = this.ring[at]!;
        if (lane.running >= this.perKey || lane.cleanup !== null) continue;
        if (best === -1 || lane.servedAt < this.ring[best]!.servedAt) best = at;
      }
      if (best === -1) return;
      const lane = this.ring[best]!;
      const waiter = lane.waiting.shift()!;
      this.waiting--;
      lane.running++;
      this.running++;
      lane.servedAt = ++this.grants;
      if (lane.waiting.length === 0) this.ring.splice(best, 1);
      waiter.deadline.off('abort', waiter.onAbort);
      waiter.resolve(lane);
    }
  }

  private abandon(waiter: Waiter): void {
    const { lane } = waiter;
    const index = lane.waiting.indexOf(waiter);
    if (index === -1) return;
    lane.waiting.splice(index, 1);
    this.waiting--;
    if (lane.waiting.length === 0) {
      const at = this.ring.indexOf(lane);
      if (at !== -1) this.ring.splice(at, 1);
      if (lane.running === 0 && lane.cleanup === null) this.lanes.delete(lane.key);
    }
    waiter.resolve(null);
  }
}
