import type { InstanceState } from './types.ts';

/**
 * Allowed transitions of DESIGN section 5. Anything else is a kernel bug, reported loudly rather than letting
 * an instance drift into a state the supervisor cannot reason about.
 */
const TRANSITIONS: Record<InstanceState, readonly InstanceState[]> = {
  created: ['starting', 'stopping', 'stopped', 'hibernated', 'failed'],
  starting: ['running', 'restarting', 'failed', 'stopping', 'stopped'],
  running: ['restarting', 'stopping', 'failed', 'stopped'],
  restarting: ['starting', 'failed', 'stopping', 'stopped'],
  stopping: ['stopped', 'hibernated', 'restarting', 'failed'],
  stopped: ['starting', 'waking', 'stopping', 'stopped'],
  hibernated: ['waking', 'starting', 'stopping', 'stopped'],
  waking: ['running', 'restarting', 'failed', 'hibernated', 'stopping', 'stopped'],
  failed: ['starting', 'stopping', 'stopped'],
};

export function canTransition(from: InstanceState, to: InstanceState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Every state but `state`: what to wait for when waiting for an instance to leave one. */
export function statesOtherThan(state: InstanceState): ReadonlySet<InstanceState> {
  return new Set((Object.keys(TRANSITIONS) as InstanceState[]).filter((s) => s !== state));
}
