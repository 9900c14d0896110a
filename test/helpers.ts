import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ConfigInput, ServiceInput } from '../core/config/schema.ts';
import type { Kernel } from '../core/kernel.ts';
import type { PluginEntry } from '../core/plugin.ts';
import { SYSTEM_PATH, findProgram } from '../core/process/tenant-launch.ts';
import { createTestKernel, type TestKernel } from '../core/test-kernel.ts';
import type { InstanceEvent } from '../core/types.ts';
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
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; timeoutMs?: number; localAddress?: string } = {},
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
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
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

/** GET `url` from the instance at `host` through the kernel: asserts a 200 (the body is the message) and parses it. */
export async function getJson<T>(kernel: Kernel | string, host: string, url: string, options: { timeoutMs?: number } = {}): Promise<T> {
  const reply = await request(kernel, host, url, options);
  assert.equal(reply.status, 200, reply.body);
  return JSON.parse(reply.body) as T;
}

/** A management API call on the bare domain, with a JSON body when one is given. */
export function apiCall(
  kernel: Kernel,
  method: string,
  url: string,
  headers: Record<string, string>,
  body?: unknown,
  localAddress?: string,
): Promise<Reply> {
  return request(kernel, 'localhost', url, {
    method,
    headers: body === undefined ? headers : { ...headers, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    ...(localAddress ? { localAddress } : {}),
  });
}

/** A TCP port free on 127.0.0.1 right now (for a server a test starts as a child, which needs to be told one). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
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

/** True when `program` is found the way the runtimes look for a tool: on PATH, then in the system folders. */
export function onPath(program: string): boolean {
  return (findProgram(program, process.env.PATH ?? '', '/') ?? findProgram(program, SYSTEM_PATH, '/')) !== null;
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

/** The state letter of /proc/<pid>/stat ('R', 'S', 'Z', ...), or null when there is no such process. */
export function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0] ?? null;
  } catch {
    return null;
  }
}

/** Gone for good: no process, or a zombie (it runs nothing and holds nothing; only its parent can reap it). */
export function gone(pid: number): boolean {
  return !alive(pid) || procState(pid) === 'Z';
}

/**
 * A started kernel with the serve plugins, closed after the test; every process it spawned must be gone.
 * `spawns` counts 'spawned' events per instance key; `events` is every lifecycle event, in order.
 * `beforeClose` runs at teardown before the kernel is closed (e.g. to drop client sockets still open).
 */
export async function trackedKernel(
  t: TestContext,
  services: Record<string, ServiceInput>,
  options: { settings?: ConfigInput['settings']; beforeClose?: () => void | Promise<void> } = {},
): Promise<{ kernel: TestKernel; spawns: Map<string, number>; events: InstanceEvent[] }> {
  const config: ConfigInput = options.settings === undefined ? { services } : { settings: options.settings, services };
  const kernel = await createTestKernel({ plugins: servePlugins, config });
  return { kernel, ...reapSpawns(t, kernel, options.beforeClose) };
}

/**
 * Records the kernel's lifecycle events and its spawns per instance; after the test (`beforeClose` first) closes
 * the kernel and waits for every process it spawned to be gone.
 */
export function reapSpawns(t: TestContext, kernel: TestKernel, beforeClose?: () => void | Promise<void>): { spawns: Map<string, number>; events: InstanceEvent[] } {
  const pids: number[] = [];
  const spawns = new Map<string, number>();
  const events: InstanceEvent[] = [];
  kernel.hooks.stateChange.tap('test-pids', (event) => {
    events.push(event);
    if (event.type !== 'spawned') return;
    spawns.set(event.instance, (spawns.get(event.instance) ?? 0) + 1);
    const pid = /pid (\d+)/.exec(event.reason ?? '')?.[1];
    if (pid) pids.push(Number(pid));
  });
  t.after(async () => {
    await beforeClose?.();
    await kernel.close();
    await waitFor(() => pids.every((pid) => !alive(pid)), `spawned processes ${pids.join(', ')} to be gone`, 15_000);
  });
  return { spawns, events };
}

/**
 * Records every lifecycle event as it is emitted. With `extra`, each recorded event is a copy carrying the fields
 * `extra` returns, computed at the moment of emission (e.g. the instance's in-flight count).
 */
export function recordEvents(kernel: Kernel): InstanceEvent[];
export function recordEvents<T extends object>(kernel: Kernel, extra: (event: InstanceEvent) => T): Array<InstanceEvent & T>;
export function recordEvents(kernel: Kernel, extra?: (event: InstanceEvent) => object): InstanceEvent[] {
  const events: InstanceEvent[] = [];
  kernel.hooks.stateChange.tap('test', (event) => {
    events.push(extra ? { ...event, ...extra(event) } : event);
  });
  return events;
}

/** Counts completed health checks of one kind ('http' or 'tcp'), with when they finished. */
export function countChecks(kernel: Kernel, kind: 'http' | 'tcp'): number[] {
  const at: number[] = [];
  kernel.timings.onTiming((hook) => {
    if (hook === `health:${kind}`) at.push(Date.now());
  });
  return at;
}
