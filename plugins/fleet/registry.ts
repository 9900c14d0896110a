/** Fleet nodes running in this process, by node id: how tests and the bench reach a node's state and placer. */
import type { FleetConnection } from './connection.ts';
import type { Placer } from './placement.ts';
import type { FleetState } from './state.ts';

/** A forwarding stand-in: no process; stopping it forgets it. */
export interface Stub {
  node: string;
}

export interface FleetNode {
  readonly self: string;
  readonly state: FleetState;
  readonly placer: Placer;
  readonly connection: FleetConnection;
  /** Instances served here through a stand-in, by `service\0id`, with the node they forward to. */
  readonly stubs: ReadonlyMap<string, Stub>;
  /** One heartbeat, failover and reconcile pass now (the timer runs them every heartbeatMs). */
  tick(): Promise<void>;
}

export const running = new Map<string, FleetNode>();

/** The fleet node of a server, by its node id: undefined when none runs in this process. */
export function fleetOf(node: string): FleetNode | undefined {
  return running.get(node);
}
