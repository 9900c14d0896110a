/**
 * Messages between the kernel's process and its proxy workers (core/dataplane/workers/), over the fork's IPC
 * channel (advanced serialization). The kernel is the only one that decides anything: a worker mirrors the
 * routes it asked for, serves what it can, and hands every other connection back with the bytes it read.
 */
import type { UpstreamAddress } from '../../types.ts';
import type { LbMode } from '../balance.ts';

/** One instance as a worker sees it: enough to connect to it and account for it. */
export interface MirroredInstance {
  key: string;
  service: string;
  id: string;
  weight: number;
  /** Running with an address a worker can connect to (not an in-process instance). */
  address: UpstreamAddress | null;
  requestTimeout: number;
}

/** A host's route as the kernel answered it: null when a worker cannot serve it (the kernel's process does). */
export interface MirroredRoute {
  mode: 'direct' | 'weighted';
  service: string;
  /** The service's rule for weighted hosts, which the worker applies per request with its own in-flight counts. */
  lb: LbMode;
  candidates: MirroredInstance[];
}


export type ToWorker =
  /** Whether workers may route at all (the router is the only route tap and nothing edits upstream heads), and whether to report requests. */
  | { t: 'config'; routable: boolean; reportRequests: boolean; spill?: boolean }
  /** Under proxy.accept 'spill': a kept-alive connection of the kernel's, idle, sent with it, for this worker to serve. */
  | { t: 'connection' }
  /** Under proxy.accept 'spill': stop accepting (close this process's copy of the listening socket), keep serving. */
  | { t: 'park' }
  /** Routes changed: every mirrored route is dropped (asked again on next use). */
  | { t: 'invalidate' }
  /** As invalidate, answered with `synced` once done: every message sent before it has been applied. */
  | { t: 'sync'; id: number }
  | { t: 'route'; id: number; route: MirroredRoute | null }
  /** Stop accepting, finish the connections in progress, exit. */
  | { t: 'close' };

export type FromWorker =
  | { t: 'ready' }
  /**
   * Under proxy.accept 'spill', every SPILL_SAMPLE_MS: its event-loop utilization over the interval (counted only
   * while it accepts) and the client connections it holds (parked or not: what a spill's share is measured against).
   */
  | { t: 'load'; elu: number; connections: number }
  /** `connections`: the client connections the worker holds (for tests: handed-back ones are not held). */
  | { t: 'synced'; id: number; connections: number }
  | { t: 'route'; id: number; hostname: string; remoteAddress: string }
  /** A connection handed back (with the socket): `bytes` are what the worker read of it and did not serve. */
  | { t: 'connection'; bytes: Uint8Array }
  /** Per instance: change of this worker's in-flight count since the last report, and whether it saw traffic. */
  | { t: 'activity'; entries: Array<[string, number, boolean]> }
  /** Requests finished since the last report: how many, and (when the kernel has `request` taps) each one, packed (records.ts). */
  | { t: 'requests'; served: number; strings: string[]; numbers: Float64Array; dropped: number };
