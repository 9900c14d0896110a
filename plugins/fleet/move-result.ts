/** What a move answers (the API's move route, `ten move`), and the limits both sides of a move share. */

/** Node-to-node calls of a move; the commit includes the target's start (or restore). */
export const CALL_MS = 120_000;
/** The states in which an instance has a process (or one coming) that a move must stop first. */
export const ACTIVE: ReadonlySet<string> = new Set(['running', 'starting', 'waking']);

export interface MoveResult {
  service: string;
  id: string;
  from: string;
  to: string;
  /** live: the process was saved and restored (CRIU); cold: its data copied (and it stopped and started if it ran); placement: nothing of it here, only the placement moved. */
  mode: 'live' | 'cold' | 'placement';
  /** Why not live, when not. */
  reason: string | null;
  /** From holding new requests to the target serving: what a client waited at most. */
  pauseMs: number;
  bytes: number;
  /** Where the pause went, in ms: waiting for requests in flight, stopping (the final dump), carrying the data (packed, sent and unpacked as one stream), the placement's CAS, the target's start or restore. */
  phases: { idle: number; stop: number; transfer: number; switch: number; start: number };
}
