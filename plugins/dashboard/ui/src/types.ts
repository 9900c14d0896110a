// The API's answers, as the dashboard reads them (docs/api.md, docs/dashboard.md).

export type InstanceState = 'created' | 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped' | 'hibernated' | 'waking' | 'failed';

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
}

export interface Session {
  kind: 'admin' | 'tenant';
  tenant: string | null;
  name: string | null;
  csrf: string;
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
