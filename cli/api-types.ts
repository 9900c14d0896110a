/**
 * The shapes the management API answers with, as the CLI reads them. The CLI is a client like any other, so
 * these are declared from the documented API rather than imported from the plugins that serve it.
 */

export interface InstanceView {
  key: string;
  service: string;
  id: string;
  state: string;
  tier: string;
  health: string;
  weight: number;
  pid: number | null;
  port: number | null;
  inFlight: number;
  restarts: number;
  startedAt: number | null;
  readyAt: number | null;
  lastActivity: number | null;
  stateSince: number | null;
  lastExit: unknown;
  lastError: string | null;
  uptimeSeconds: number | null;
  idleSeconds: number | null;
  memoryBytes: number | null;
  cpuSeconds: number | null;
}

export interface HealthView {
  ok: boolean;
  detail?: string | null;
  latencyMs?: number | null;
  state?: string;
  health?: string;
}

export interface LogLineView {
  at: number | string;
  service: string;
  id: string;
  stream: string;
  line: string;
}

export interface TokenView {
  id: string;
  name: string;
  kind: string;
  tenant: string | null;
  token?: string;
  createdAt: number | string | null;
  expiresAt: number | string | null;
  revokedAt?: number | string | null;
  lastUsedAt?: number | string | null;
}

export interface AuditEntryView {
  id: number;
  at: number;
  actor: string;
  tenant: string | null;
  action: string;
  target: string | null;
  instanceId: string | null;
  status: number;
  detail: string | null;
}
