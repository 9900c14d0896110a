// The API's answers, as the dashboard reads them (docs/api.md, docs/dashboard.md).

export type InstanceState = 'created' | 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'hibernated' | 'waking' | 'failed' | 'placed';

export interface InstanceView {
  key: string;
  service: string;
  id: string;
  state: InstanceState;
  tier: string;
  health: 'unknown' | 'healthy' | 'unhealthy';
  weight: number;
  pid: number | null;
  port: number | null;
  inFlight: number;
  restarts: number;
  startedAt: number | null;
  readyAt: number | null;
  lastActivity: number | null;
  stateSince: number | null;
  lastError: string | null;
  uptimeSeconds: number | null;
  idleSeconds: number | null;
  memoryBytes: number | null;
  cpuSeconds: number | null;
  /** Fleet mode: the node the instance lives on (null outside a fleet). */
  node?: string | null;
}

export interface Session {
  kind: 'admin' | 'tenant';
  tenant: string | null;
  name: string | null;
  csrf: string;
  /** The server is in a fleet: instances are listed fleet-wide and acted on through their owners. */
  fleet: boolean;
}

export interface LogLine {
  at: number;
  service: string;
  id: string;
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface AuditEntry {
  id: number;
  at: number;
  actor: string;
  tenant: string | null;
  action: string;
  target: string | null;
  status: number;
  detail: string | null;
}

export interface TokenView {
  id: string;
  name: string;
  kind: 'admin' | 'tenant';
  tenant: string | null;
  createdAt: number;
  expiresAt: number | null;
  revokedAt: number | null;
  lastUsedAt: number | null;
}

/** A row of GET /api/fleet/instances: a placement with its instance as its owner reports it (null: placed only). */
export interface FleetInstanceRow {
  node: string;
  nodeLive: boolean;
  key: string;
  service: string;
  id: string;
  instance: InstanceView | null;
}

/** A node of GET /api/fleet/nodes. */
export interface FleetNodeView {
  id: string;
  advertise: string;
  publicUrl: string;
  labels: Record<string, string>;
  capacity: number | null;
  running: number;
  at: number;
  state: 'active' | 'cordoned' | 'draining';
  live: boolean;
  placements: number;
}
