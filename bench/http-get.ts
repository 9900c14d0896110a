/** Loopback HTTP for the benches: a free port, one GET on a fresh connection, polling until 200, timed cold starts. */
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import type { Instance } from '../core/instance.ts';
import type { Kernel } from '../core/kernel.ts';
import { LOOPBACK, sleep } from './base.ts';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface Reply {
  status: number;
  body: string;
}

/** One GET on a fresh connection (no keep-alive), with the given Host header. */
export function httpGet(port: number, host: string, urlPath = '/', timeoutMs = 10_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: LOOPBACK, port, path: urlPath, method: 'GET', headers: { host }, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error(`GET ${host}${urlPath} timed out after ${timeoutMs}ms`)));
    req.once('error', reject);
    req.end();
  });
}

/**
 * Hibernated -> first 200 through the kernel's proxy (`port`), ms, for `cycles` cycles after one warm-up cycle
 * that is not kept. The pause after each hibernation keeps the wake from overlapping the stop.
 */
export async function coldStarts(kernel: Kernel, instance: Instance, port: number, host: string, urlPath: string, cycles: number): Promise<number[]> {
  const cold: number[] = [];
  for (let cycle = 0; cycle <= cycles; cycle++) {
    await kernel.hibernate(instance, 'benchmark');
    await sleep(100);
    const started = performance.now();
    const reply = await httpGet(port, host, urlPath);
    if (reply.status !== 200) throw new Error(`cold request answered ${reply.status}: ${reply.body.slice(0, 200)}`);
    if (cycle > 0) cold.push(performance.now() - started);
  }
  return cold;
}

/** Polls until a GET answers 200, or throws after `timeoutMs` with the last error. */
export async function waitForOk(port: number, host: string, timeoutMs: number, what: string, urlPath = '/'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    try {
      const reply = await httpGet(port, host, urlPath, Math.max(100, deadline - Date.now()));
      if (reply.status === 200) return;
      last = `HTTP ${reply.status}: ${reply.body.slice(0, 200)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(20);
  }
  throw new Error(`${what} did not answer 200 within ${timeoutMs}ms (last: ${last})`);
}
