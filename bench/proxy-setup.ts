/**
 * What the proxy benchmark (bench/proxy.ts) runs: ten serve's config for the hello backend, starting it, and
 * telling its proxy processes from the instances it runs.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { BENCH_DIR, type TenServe, childCommandLines, startTenServe, waitForOk } from './lib.ts';

export const HOST = 'bench.hello.localhost';
const HELLO_APP = path.join(BENCH_DIR, 'fixtures', 'hello.mjs');
export const MIN_PROXY = path.join(BENCH_DIR, 'fixtures', 'min-proxy.mjs');

/** Where the ten serve with `workers` proxy processes keeps its data. */
export function dataDirOf(dir: string, workers: number, accept: 'spread' | 'spill' = 'spread'): string {
  return path.join(dir, workers === 1 ? 'data' : `data-${workers}${accept === 'spill' ? '-spill' : ''}`);
}

/** A config for `ten serve`: one service whose single instance is the hello backend on a port we chose. */
export function writeServeConfig(
  dir: string,
  backendPort: number,
  workers = 1,
  name = 'tenement.config.json',
  accept: 'spread' | 'spill' = 'spread',
  // BENCH_PROXY_PIN=off: every ten serve of the benches unpinned (settings.proxy.pin), for an A/B of the pinning.
  pin: 'busy' | 'off' = process.env.BENCH_PROXY_PIN === 'off' ? 'off' : 'busy',
): string {
  const file = path.join(dir, name);
  const config = {
    settings: {
      domain: 'localhost',
      port: 0,
      listen: '127.0.0.1',
      dataDir: dataDirOf(dir, workers, accept),
      // A one-port range, so the benchmark knows where the instance listens and can reach it directly.
      portRange: { from: backendPort, to: backendPort },
      healthInterval: '60s',
      proxy: { workers, accept, pin },
    },
    services: {
      hello: { command: process.execPath, args: [HELLO_APP], health: '/health', idleTimeout: false },
    },
    instances: { hello: ['bench'] },
  };
  writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  return file;
}

export async function startTenement(config: string, dataDir: string, nodeArgs: readonly string[] = []): Promise<TenServe> {
  const serve = await startTenServe({ config, dataDir, nodeArgs });
  try {
    await waitForOk(serve.port, HOST, 20_000, `${HOST} through ten serve`);
  } catch (error) {
    await serve.stop();
    throw new Error(`${(error as Error).message}\n--- ten serve output ---\n${serve.child.output()}`);
  }
  return serve;
}

/** ten serve's own processes (it and its proxy workers), not the instances it runs. */
export function proxyProcesses(servePid: number): { proxy: number[]; backend: number[] } {
  const proxy = [servePid];
  const backend: number[] = [];
  for (const { pid, cmdline } of childCommandLines(servePid)) {
    (cmdline.includes('tenement-proxy') || cmdline.includes('worker-main') ? proxy : backend).push(pid);
  }
  return { proxy, backend };
}
