/**
 * Holding requests during a move (docs/fleet-move.md): while an instance moves, on its source and on its target
 * until the commit, new requests and wakes wait at its gate; once moved, the source remembers for a while where
 * it went, for senders that had not seen the move.
 */
import { ErrorCodes } from '../../core/errors.ts';
import type { RouteTarget } from '../../core/types.ts';
import { instanceKey } from './keys.ts';

/** How long a request waits for a move of its instance before a retryable 503. */
const HOLD_MS = 30_000;
/** A node forwards requests for an instance it moved away for this long (senders that had not seen the move). */
const MOVED_MS = 60_000;
const MAX_MOVED = 10_000;

export class MoveHolds {
  /** By instance key: resolved when the requests held for that instance may go on. */
  readonly gates = new Map<string, Promise<void>>();
  private readonly moved = new Map<string, { to: string; until: number }>();

  /**
   * Waits while the instance is being moved (its pause); undefined to go on, or a retryable 503 past HOLD_MS.
   * Synchronous (no promise) when no move is under way: the request path pays nothing.
   */
  hold(service: string, id: string): Promise<RouteTarget | undefined> | undefined {
    const gate = this.gates.get(instanceKey(service, id));
    if (!gate) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<RouteTarget>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({ kind: 'reject', status: 503, code: ErrorCodes.FLEET_UNAVAILABLE, message: `${service}:${id} is being moved to another node: try again`, retryAfter: 1 }),
        HOLD_MS,
      );
    });
    return Promise.race([gate.then(() => undefined), late]).finally(() => clearTimeout(timer));
  }

  /** The node this node moved the instance to within MOVED_MS, if any: requests sent here late go on there. */
  movedTo(service: string, id: string): string | undefined {
    const key = instanceKey(service, id);
    const entry = this.moved.get(key);
    if (!entry) return undefined;
    if (entry.until < Date.now()) {
      this.moved.delete(key);
      return undefined;
    }
    return entry.to;
  }

  remember(key: string, to: string): void {
    this.moved.delete(key);
    this.moved.set(key, { to, until: Date.now() + MOVED_MS });
    for (const [old] of this.moved) {
      if (this.moved.size <= MAX_MOVED) break;
      this.moved.delete(old);
    }
  }
}
