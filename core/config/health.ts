import type { ServiceConfig, Settings } from './schema.ts';

export interface HealthSettings {
  kind: 'http' | 'tcp';
  path: string | null;
  intervalMs: number;
  timeoutMs: number;
  failures: number;
}

/** The effective health check of a service: its own `health` fields over the global settings. */
export function healthSettings(service: ServiceConfig, settings: Settings): HealthSettings {
  const own = typeof service.health === 'string' ? { path: service.health } : (service.health ?? {});
  const path = own.path ?? null;
  return {
    kind: path ? 'http' : 'tcp',
    path,
    intervalMs: own.interval ?? settings.healthInterval,
    timeoutMs: own.timeout ?? settings.healthTimeout,
    failures: own.failures ?? settings.unhealthyThreshold,
  };
}
