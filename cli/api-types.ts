/**
 * The shapes the management API answers with, as the CLI reads them. Kernel-owned shapes are the kernel's own
 * types (one source of truth, type-only imports); plugin-owned ones are declared from the documented API, as
 * any client would, unless the plugin exports the shape from its index for clients (imported type-only too: the
 * CLI loads no plugin code for it).
 */
import type { AuditEntry } from '../core/api/audit.ts';
import type { InstanceSnapshot } from '../core/instance.ts';

/** The kernel's instance snapshot (core/instance.ts) plus what the instances API adds. */
export interface InstanceView extends InstanceSnapshot {
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

export type AuditEntryView = AuditEntry;

/** The answer of POST /api/gc (docs/storage.md): the storage plugin's report, exported from its index. */
export type { GcReport as GcReportView } from '../plugins/storage/index.ts';
