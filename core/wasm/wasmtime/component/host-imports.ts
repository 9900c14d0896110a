/**
 * The host side of our worlds' imports for one wasmtime component instance, by versioned interface and WIT
 * function name: the same implementations the V8 path gives jco (log line cut, random bytes bound, the
 * tenant-data and metrics checks), so a guest sees the same host on either engine.
 */
import { randomBytes } from 'node:crypto';
import { guestMetricsImports } from '../../component/guest-metrics.ts';
import { tenantDataImports } from '../../component/tenant-data.ts';
import type { GuestHost } from '../../component/types.ts';

export type HostFunctions = Record<string, (...args: never[]) => unknown>;

const MAX_LOG_LINE = 16 * 1024;
const MAX_RANDOM_BYTES = 65_536;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function instantiateHostImports(host: GuestHost): Map<string, HostFunctions> {
  const data = tenantDataImports(host.dataDir);
  const metrics = guestMetricsImports(() => host.metrics?.() ?? []);
  return new Map<string, HostFunctions>([
    [
      'tenement:http/log@0.1.0',
      {
        write: (to: string, line: string) => {
          host.log(to === 'stderr' ? 'stderr' : 'stdout', line.length > MAX_LOG_LINE ? `${line.slice(0, MAX_LOG_LINE)}…` : line);
        },
      },
    ],
    [
      'tenement:http/runtime@0.1.0',
      {
        now: () => Date.now(),
        'random-bytes': (len: number) => new Uint8Array(randomBytes(Math.min(Math.max(0, len >>> 0), MAX_RANDOM_BYTES))),
        'utf8-encode': (text: string) => encoder.encode(text),
        'utf8-decode': (bytes: Uint8Array) => decoder.decode(bytes),
      },
    ],
    [
      'tenement:http/tenant-data@0.1.0',
      {
        read: (name: string) => data.read(name),
        write: (name: string, bytes: Uint8Array) => data.write(name, bytes),
        remove: (name: string) => data.remove(name),
        names: () => data.names(),
      },
    ],
    [
      'tenement:http/metrics@0.1.0',
      {
        set: (name: string, labels: [string, string][], value: number) => metrics.set(name, labels, value),
        add: (name: string, labels: [string, string][], delta: number) => metrics.add(name, labels, delta),
      },
    ],
  ]);
}
