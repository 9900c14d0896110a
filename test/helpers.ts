import http, { type IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServiceInput } from '../core/config/schema.ts';
import type { Kernel } from '../core/kernel.ts';
import type { PluginEntry } from '../core/plugin.ts';
import health from '../plugins/health/index.ts';
import hibernate from '../plugins/hibernate/index.ts';
import router from '../plugins/router/index.ts';
import processRuntime from '../runtimes/process/index.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const FIXTURES = path.join(ROOT, 'test', 'fixtures');
export const ECHO_APP = path.join(FIXTURES, 'echo-app.mjs');

/** The plugins `ten serve` loads by default. */
export const servePlugins: PluginEntry[] = [processRuntime, router, health, hibernate];

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One HTTP request to the kernel with the given Host header, on a fresh connection. */
export function request(
  kernel: Kernel | string,
  host: string,
  urlPath = '/',
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number } = {},
): Promise<Reply> {
  const base = new URL(typeof kernel === 'string' ? kernel : kernel.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method: options.method ?? 'GET',
        path: urlPath,
        headers: { host, ...options.headers },
        agent: false,
        timeout: options.timeoutMs ?? 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${host}${urlPath} timed out`)));
    req.on('error', reject);
    req.end(options.body);
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` until it is true or `timeoutMs` passes (then throws with `what`). */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    await sleep(20);
  }
}

/** True while a process with this pid exists (zombies included). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A service running the echo fixture, with overrides. */
export function echoService(overrides: Partial<ServiceInput> = {}): ServiceInput {
  return { command: `node ${ECHO_APP}`, health: '/health', ...overrides };
}
