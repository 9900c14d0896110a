/**
 * The attributes request spans share, made once and kept per instance: a SERVER span's method, scheme, host
 * and instance names, a CLIENT span's instance names, method and the instance's address. Every request to an
 * instance repeats them; made once, they are one object for all its spans and one copy of bytes in each
 * exported span (records.ts SharedAttributes, otlp-proto.ts), not five attributes written per span.
 * A few variants per instance (methods, host names) are kept, the oldest replaced; an instance's are dropped
 * when it goes, and the whole cache is emptied past MAX_INSTANCES, so it stays bounded whatever clients send.
 */
import type { Attributes } from '@opentelemetry/api';
import type { ATTR_SERVER_PORT } from '@opentelemetry/semantic-conventions';
import type { InstanceView } from '../../core/types.ts';
import { SharedAttributes } from './records.ts';

/** 'server.port' and 'tenement.tier' are written out below as these are (spans.ts WRITTEN_OUT has the rest; checked by tsc). */
export const WRITTEN_OUT_HERE: [typeof ATTR_SERVER_PORT, 'tenement.tier'] = ['server.port', 'tenement.tier'];

/** Variants kept per instance and span kind (method and host for SERVER, method and address for CLIENT). */
const VARIANTS = 4;
const MAX_INSTANCES = 4096;

interface Variant {
  method: string;
  /** SERVER: the host name asked for; CLIENT: the running handle the address was read from. */
  where: unknown;
  shared: SharedAttributes;
}

interface PerInstance {
  server: Variant[];
  client: Variant[];
}

function find(variants: readonly Variant[], method: string, where: unknown): SharedAttributes | null {
  for (let i = 0; i < variants.length; i++) {
    const v = variants[i]!;
    if (v.method === method && v.where === where) return v.shared;
  }
  return null;
}

function keep(variants: Variant[], method: string, where: unknown, attributes: Attributes): SharedAttributes {
  const shared = new SharedAttributes(Object.freeze(attributes));
  if (variants.length >= VARIANTS) variants.shift();
  variants.push({ method, where, shared });
  return shared;
}

export class SharedAttributeCache {
  private readonly instances = new Map<string, PerInstance>();

  private of(instance: InstanceView): PerInstance {
    let entry = this.instances.get(instance.key);
    if (entry === undefined) {
      if (this.instances.size >= MAX_INSTANCES) this.instances.clear();
      entry = { server: [], client: [] };
      this.instances.set(instance.key, entry);
    }
    return entry;
  }

  /** A SERVER span's: method, scheme, the host asked for, the instance's names. */
  server(instance: InstanceView, method: string, hostname: string): SharedAttributes {
    const variants = this.of(instance).server;
    return (
      find(variants, method, hostname) ??
      keep(variants, method, hostname, {
        'http.request.method': method,
        'url.scheme': 'http',
        'server.address': hostname,
        'tenement.service': instance.service,
        'tenement.instance': instance.id,
      })
    );
  }

  /** A CLIENT (or wasm invoke) span's: the instance's names, method, and its address or tier. */
  client(instance: InstanceView, method: string): SharedAttributes {
    const handle = instance.handle;
    const variants = this.of(instance).client;
    const found = find(variants, method, handle);
    if (found !== null) return found;
    const attributes: Attributes = { 'tenement.service': instance.service, 'tenement.instance': instance.id, 'http.request.method': method };
    if (handle?.inProcess) attributes['tenement.tier'] = instance.tier;
    else {
      const address = handle?.address;
      if (address?.socketPath) attributes['server.address'] = address.socketPath;
      else if (address) {
        attributes['server.address'] = address.host;
        attributes['server.port'] = address.port;
      }
    }
    return keep(variants, method, handle, attributes);
  }

  /** The instance went: what was kept for it goes too. */
  forget(key: string): void {
    this.instances.delete(key);
  }
}
