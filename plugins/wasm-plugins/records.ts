import type { InstanceEvent, RequestInfo } from '../../core/types.ts';
import type { PluginInstanceEvent, PluginRequest } from './guest-types.ts';

/** The WIT `request` record (sdk/wit/plugin.wit) as jco lowers it: the very shape a guest receives. */
export type RequestRecord = PluginRequest;

export function requestRecord(request: RequestInfo): RequestRecord {
  const headers: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const one of value) headers.push([name, one]);
    else headers.push([name, value]);
  }
  return { method: request.method, host: request.hostname, path: request.url, headers, remoteAddress: request.remoteAddress };
}

/**
 * The WIT `instance-event` record as the host lowers it: the guest's shape, with `at` (a u64) always a bigint
 * and a missing reason passed as `undefined` (option none).
 */
export interface EventRecord extends Omit<PluginInstanceEvent, 'reason' | 'at'> {
  reason: string | undefined;
  at: bigint;
}

export function eventRecord(event: InstanceEvent): EventRecord {
  return {
    type: event.type,
    instance: event.instance,
    service: event.service,
    id: event.id,
    from: event.from,
    to: event.to,
    reason: event.reason,
    at: BigInt(Math.round(event.at)),
  };
}
