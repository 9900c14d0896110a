/**
 * Who gets the pool's next free thread. Each caller key (a tenant's `fn/<service>:<id>`, a plugin's
 * `plugin/<name>`) has its own lane: its calls beyond what it may run now wait in the lane, and a free thread
 * goes to the waiting lane served least recently. A runaway tenant queues behind itself, never in front of
 * others.
 *
 * A lane holds at most `perKey` threads while any other lane waits. When nobody else waits it may borrow the
 * rest (one tenant alone gets the whole pool), unless one of its calls ran into its deadline in the last
 * `STRIKE_MS`: such a tenant keeps to its share even when the pool is idle, so (with `perKey` below the thread
 * count) a thread is always left to the others. Calls cannot be preempted: another tenant arriving while a
 * well-behaved tenant borrows waits for one of its calls to end, then gets the thread.
 *
 * The common case allocates nothing but the lane: a call that may run now takes the thread at once (`enter`);
 * only a call that must wait gets a promise and a waiter, which the call's deadline expires directly.
 */
import type { Deadline } from './deadline.ts';

/** How long a lane whose call ran into its deadline keeps to its share, idle pool or not. */
export const STRIKE_MS = 60_000;
/** Struck keys remembered at most (the oldest go first): a bound on what clients can make us keep. */
const MAX_STRIKES = 4096;
/** How long a held lane waits, once its calls ended, for a terminated worker's thread to be gone. */
const SETTLE_MS = 100;

class Waiter {
  constructor(
    readonly lane: Lane,
    readonly deadline: Deadline,
    readonly resolve: (lane: Lane | null) => void,
    private readonly share: FairShare,
  ) {}

  /** Called by the deadline when it passes while the call still waits. */
  expire(): void {
    this.share.abandon(this);
  }
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
  /** Keys whose call ran into its deadline, with when that was (insertion order: oldest first). */
  private readonly strikes = new Map<string, number>();

  constructor(
    /** Threads of the pool. */
    readonly slots: number,
    /** Threads one key may hold while others wait (and always, once struck). */
    readonly perKey: number,
  ) {}

  /**
   * Takes a thread for `key` now when that is fair, else null (then `wait`). Fair: a thread is free and the
   * key is under its share, or nobody waits and the key may borrow. Whoever waits while a thread is free is
   * in a lane that may not take it, so taking it passes no one.
   */
  enter(key: string): Lane | null {
    if (this.running >= this.slots) return null;
    let lane = this.lanes.get(key);
    if (lane === undefined) {
      lane = new Lane(key);
      this.lanes.set(key, lane);
    } else if (lane.cleanup !== null || (lane.running >= this.perKey && (this.waiting > 0 || this.struck(key)))) {
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
      const waiter = new Waiter(target, deadline, resolve, this);
      if (target.waiting.push(waiter) === 1) this.ring.push(target);
      this.waiting++;
      deadline.waiter = waiter;
      // A thread may be free for this key already (its share was full when it asked, a call ended since).
      this.pump();
    });
  }

  /** One of `key`'s calls ran into its deadline: it keeps to its share for STRIKE_MS. */
  strike(key: string): void {
    this.strikes.delete(key);
    this.strikes.set(key, Date.now());
    if (this.strikes.size > MAX_STRIKES) this.strikes.delete(this.strikes.keys().next().value as string);
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

  /** The deadline of a waiting call passed: it leaves its lane unanswered by the pool. */
  abandon(waiter: Waiter): void {
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

  private struck(key: string): boolean {
    const at = this.strikes.get(key);
    if (at === undefined) return false;
    if (Date.now() - at < STRIKE_MS) return true;
    this.strikes.delete(key);
    return false;
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

  /**
   * Gives free threads to waiting lanes: first to lanes under their share, least recently served first; then,
   * threads nobody under their share wants, to lanes that may borrow (none struck), the same way.
   */
  private pump(): void {
    while (this.running < this.slots && this.ring.length > 0) {
      let best = -1;
      let borrower = -1;
      for (let at = 0; at < this.ring.length; at++) {
        const lane = this.ring[at]!;
        if (lane.cleanup !== null) continue;
        if (lane.running < this.perKey) {
          if (best === -1 || lane.servedAt < this.ring[best]!.servedAt) best = at;
        } else if (best === -1 && !this.struck(lane.key)) {
          if (borrower === -1 || lane.servedAt < this.ring[borrower]!.servedAt) borrower = at;
        }
      }
      const chosen = best !== -1 ? best : borrower;
      if (chosen === -1) return;
      const lane = this.ring[chosen]!;
      const waiter = lane.waiting.shift()!;
      this.waiting--;
      lane.running++;
      this.running++;
      lane.servedAt = ++this.grants;
      if (lane.waiting.length === 0) this.ring.splice(chosen, 1);
      waiter.deadline.waiter = null;
      waiter.resolve(lane);
    }
  }
}
