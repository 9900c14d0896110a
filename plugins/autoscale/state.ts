/** The autoscaler's per-service records and what it shows through the API (controller.ts keeps them). */
import type { Decision, KpaState } from './kpa.ts';
import type { ScaleConfig } from './schema.ts';

export type Phase = 'starting' | 'serving' | 'draining';

export interface Replica {
  id: string;
  phase: Phase;
  since: number;
}

export interface ScaleEvent {
  at: string;
  service: string;
  metric: ScaleConfig['metric'];
  /** The window whose value decided: 'stable' or 'panic'. */
  window: 'stable' | 'panic';
  windowMs: number;
  value: number;
  target: number;
  from: number;
  to: number;
  /** Why the count is not what the load asked for (host ceiling, min 0's last replica...). */
  bound: string | null;
  reason: string;
}

export interface ServiceState {
  config: ScaleConfig;
  configKey: string;
  kpa: KpaState;
  replicas: Map<string, Replica>;
  next: number;
  requests: number;
  lastSample: number;
  last: Decision | null;
  lastBound: string | null;
  events: ScaleEvent[];
  /** Largest resident memory measured among its running instances (bytes), for the host's memory ceiling. */
  measuredBytes: number | null;
}

export interface ServiceScaleView {
  service: string;
  config: ScaleConfig | null;
  current: number;
  ready: number;
  desired: number | null;
  decision: Decision | null;
  bound: string | null;
  replicas: Array<{ id: string; phase: Phase; state: string | null }>;
  events: ScaleEvent[];
}
