/**
 * The cold-start figure of bench/wasm-engines.ts, measured so that this host's idle wake-up cancels out: N
 * interleaved pairs of (the native Node server's GET after a pause P, the hibernated wasm instance's first GET
 * after the same P), both on a new connection through the same proxy, the order within a pair alternating. Per
 * pair, the wasm GET minus the native one is what hibernation adds; the wake inside the server is timed from
 * the instance's `waking` to its `woken` event. Each cycle also sends the same wasm GET after the same pause
 * without hibernating (idle-warm), as before, so the wake's own share stays visible. The GETs are timed by a
 * client in a process of its own (get-client.ts), as wrk times the warm figures.
 */
import { httpGet, median, percentile, sleep } from './lib.ts';
import { GetClient } from './get-client.ts';
import type { Kernel } from '../core/kernel.ts';

/** The pause before each GET; after a hibernation it also keeps the wake from overlapping the stop. */
export const IDLE_MS = 100;

/** A native Node server answering what examples/wasm-c answers, behind the same proxy: the baseline. */
export const NATIVE_APP = `import http from 'node:http';
http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' });
  res.end('Hello, ' + process.env.TENEMENT_INSTANCE + '!\\n');
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

/** Median and p90 of a set of samples, ms. */
export interface Spread90 {
  p50: number;
  p90: number;
}
export const spread90 = (values: readonly number[]): Spread90 => ({ p50: median(values), p90: percentile(values, 90) });

export interface ColdPairs {
  pairs: number;
  /** The hibernated instance's first GET, end to end on a new connection. */
  cold: Spread90;
  /** The native server's GET after the same pause, in the same pairs. */
  native: Spread90;
  /** Per pair, cold minus native: what hibernation adds over a running native server. */
  added: Spread90;
  /** In the server: `waking` -> `woken`. */
  wake: Spread90;
  /** The same wasm GET after the same pause, not hibernated. */
  idleWarm: Spread90;
  /** Per cycle, cold minus idle-warm: what the wake adds to the wasm path after a pause. */
  wakeAdded: Spread90;
  /** Per cycle, idle-warm minus native: what the wasm path itself pays after a pause. */
  idleOverNative: Spread90;
  /** The raw samples, for callers that compare runs. */
  samples: { cold: number[]; native: number[]; idleWarm: number[]; wakes: number[] };
}

/**
 * Where the GETs are timed: a client process of its own (get-client.ts: what a real client sees), or with
 * BENCH_COLD_CLIENT=in-process this process, as before session 12 (the server's deferred work then counts).
 */
type TimedGet = (port: number, host: string) => Promise<number>;

function timedGetter(client: GetClient | null): TimedGet {
  return async (port, host) => {
    let status: number;
    let ms: number;
    let body: string;
    if (client) {
      ({ status, ms, body } = await client.get(port, host, '/'));
    } else {
      const started = performance.now();
      ({ status, body } = await httpGet(port, host, '/'));
      ms = performance.now() - started;
    }
    if (status !== 200) throw new Error(`${host} answered ${status}: ${body.slice(0, 200)}`);
    return ms;
  };
}

export const coldClientInProcess = (): boolean => process.env.BENCH_COLD_CLIENT === 'in-process';

export async function coldPairs(kernel: Kernel, service: string, port: number, host: string, nativeHost: string, pairs: number): Promise<ColdPairs> {
  const instance = kernel.instances.get(service, 'bench')!;
  let wakingAt = 0;
  const wakes: number[] = [];
  const unwatch = kernel.watchEvents((event) => {
    if (event.instance !== instance.key) return;
    if (event.type === 'waking') wakingAt = performance.now();
    else if (event.type === 'woken') wakes.push(performance.now() - wakingAt);
  });
  const cold: number[] = [];
  const native: number[] = [];
  const idleWarm: number[] = [];
  const client = coldClientInProcess() ? null : new GetClient();
  const timedGet = timedGetter(client);
  try {
    // Pair 0 warms every path up and is not counted.
    for (let pair = 0; pair <= pairs; pair++) {
      let coldMs = 0;
      let nativeMs = 0;
      const coldGet = async () => {
        await kernel.hibernate(instance, 'benchmark');
        await sleep(IDLE_MS);
        coldMs = await timedGet(port, host);
      };
      const nativeGet = async () => {
        await sleep(IDLE_MS);
        nativeMs = await timedGet(port, nativeHost);
      };
      if (pair % 2 === 0) {
        await coldGet();
        await nativeGet();
      } else {
        await nativeGet();
        await coldGet();
      }
      await sleep(IDLE_MS);
      const warmMs = await timedGet(port, host);
      if (pair === 0) continue;
      cold.push(coldMs);
      native.push(nativeMs);
      idleWarm.push(warmMs);
    }
  } finally {
    unwatch();
    client?.close();
  }
  const counted = wakes.slice(1);
  const minus = (a: number[], b: number[]) => a.map((value, i) => value - b[i]!);
  return {
    pairs,
    cold: spread90(cold),
    native: spread90(native),
    added: spread90(minus(cold, native)),
    wake: spread90(counted),
    idleWarm: spread90(idleWarm),
    wakeAdded: spread90(minus(cold, idleWarm)),
    idleOverNative: spread90(minus(idleWarm, native)),
    samples: { cold, native, idleWarm, wakes: counted },
  };
}
