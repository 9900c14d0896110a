import type { InstanceEvent, RequestInfo } from '../../core/types.ts';

/** The WIT `request` record (sdk/wit/plugin.wit) as jco lowers it: camelCase fields, headers as pairs. */
export interface RequestRecord {
  method: string;
  host: string;
  path: string;
  headers: Array<[string, string]>;
  remoteAddress: string;
}

export function requestRecord(request: RequestInfo): RequestRecord {
  const headers: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const one of value) headers.push([name, one]);
    else headers.push([name, value]);
  }
  return { method: request.method, host: request.hostname, path: request.url, headers, remoteAddress: request.remoteAddress };
}

/** The WIT `instance-event` record: `at` is a u64, so a bigint; a missing reason is `undefined` (option none). */
export interface EventRecord {
  type: string;
  instance: string;
  service: string;
  id: string;
  from: string;
  to: string;
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
