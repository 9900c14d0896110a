// What the names tests share (names are data, issue 18, item 6): the prototype member names fed everywhere, a
// kernel with the default plugins, one bounded HTTP call, and the checks that every answer is coded, the server
// still serves and no ghost instance was left.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { TestContext } from 'node:test';
import { defaultPlugins } from '../../cli/default-plugins.ts';
import { serviceConfig } from '../../core/config/lookup.ts';
import type { ConfigInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';

export const NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'] as const;
/** The ones that are DNS labels as written (lowercased by a Host header, `toString` becomes one too). */
export const LABELS = ['constructor', 'prototype', 'tostring', 'hasownproperty', 'valueof'] as const;

export const QUIET = { healthInterval: '1h' } as const;

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One request with a bounded wait. A Server-Sent Events answer (a logs stream that was allowed) never ends: its
 * status is what counts, and the connection is dropped once the head is in.
 */
export function call(kernel: TestKernel, method: string, url: string, headers: Record<string, string>, body?: unknown, host = 'localhost'): Promise<Answer> {
  const base = new URL(kernel.url);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path: url,
        agent: false,
        timeout: 60_000,
        headers: { host, ...headers, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
      },
      (res) => {
        if (String(res.headers['content-type']).startsWith('text/event-stream')) {
          res.destroy();
          return resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** The TNM_ERR_* code of an error answer, if it has one. */
export function codeOf(answer: Answer): string | undefined {
  try {
    return (JSON.parse(answer.body) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

/** A 4xx must say what is wrong with a TNM_ERR_* code; nothing a name can do is a 5xx. */
export function assertCoded(answer: Answer, what: string): void {
  assert.ok(answer.status < 500, `${what}: ${answer.status} ${answer.body}`);
  if (answer.status >= 400) assert.match(codeOf(answer) ?? '', /^TNM_ERR_[A-Z_]+$/, `${what}: ${answer.status} ${answer.body}`);
}

/** The server still answers its health check. */
export async function assertServing(kernel: TestKernel, what: string): Promise<void> {
  const health = await call(kernel, 'GET', '/health', {});
  assert.equal(health.status, 200, `the server still answers after ${what}`);
}

/**
 * No ghost: every registered instance belongs to a configured service and carries that service's own config,
 * and the state store lists exactly the registered instances.
 */
export function assertNoGhost(kernel: TestKernel, what: string): void {
  for (const instance of kernel.instances.list()) {
    assert.equal(instance.config, serviceConfig(kernel.config, instance.service), `${what}: ${instance.key} has its service's config`);
  }
  const stored = kernel.store
    .listInstances()
    .map((row) => `${row.service}:${row.id}`)
    .sort();
  const registered = kernel.instances
    .list()
    .map((instance) => instance.key)
    .sort();
  assert.deepEqual(stored, registered, `${what}: the store holds exactly the registered instances`);
}

/** A kernel with `ten serve`'s default plugins and no periodic health checks, closed after test `t`. */
export async function namesKernel(t: TestContext, config: ConfigInput): Promise<TestKernel> {
  const kernel = await createTestKernel({ plugins: defaultPlugins, config: { ...config, settings: { ...QUIET, ...config.settings } } });
  t.after(() => kernel.close());
  return kernel;
}

export const adminToken = (kernel: TestKernel): string => readFileSync(path.join(kernel.config.settings.dataDir, 'admin.token'), 'utf8').trim();

/** A new token for `tenant`, made through the API with the `admin` headers. */
export async function tenantToken(kernel: TestKernel, admin: Record<string, string>, tenant: string): Promise<string> {
  const made = await call(kernel, 'POST', '/api/tokens', admin, { name: `names-${tenant}`, tenant });
  assert.equal(made.status, 201, made.body);
  return (JSON.parse(made.body) as { token: string }).token;
}

