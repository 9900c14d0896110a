// `ten serve` as a real child process for the alert webhooks tests: a project whose one instance crashes past its
// restart limit, the server started on it, and the management API's view of the deliveries.
import assert from 'node:assert/strict';
import { freePort } from '../helpers.ts';
import { adminToken, projectDir, startServe, writeJsonConfig, type ServeChild } from '../security/serve-child.ts';
import { closers, crashApp } from './webhooks-fixture.ts';

export interface Setup {
  dir: string;
  port: number;
  configFile: string;
}

/** A project folder whose one instance, crashy:a, crashes past its restart limit until the file `ok` exists. */
export async function project(prefix: string, alerts: Record<string, unknown>, extraServices: Record<string, unknown> = {}): Promise<Setup> {
  const dir = projectDir(`tenement-webhooks-${prefix}-`);
  const app = crashApp(dir);
  const port = await freePort();
  const configFile = writeJsonConfig(dir, {
    settings: { port, dataDir: './data', domain: 'localhost', alerts },
    services: {
      crashy: {
        command: `node ${app}`,
        restart: 'always',
        maxRestarts: 1,
        backoff: { base: '50ms', max: '100ms' },
        idleTimeout: false,
        startupTimeout: '10s',
        stopTimeout: '2s',
      },
      ...extraServices,
    },
    instances: { crashy: ['a'] },
  });
  return { dir, port, configFile };
}

/** `ten serve` on the project, killed at the end of the file if a test left it running. */
export async function serve(setup: Setup): Promise<ServeChild> {
  const child = await startServe(setup.dir, setup.configFile, setup.port);
  closers.push(async () => {
    if (!child.exited()) child.child.kill('SIGKILL');
    await child.exit;
  });
  return child;
}

/** A management API call, as the admin unless another token is given. */
export async function api<T>(serve: ServeChild, url: string, options: { method?: string; token?: string } = {}): Promise<{ status: number; body: T }> {
  const response = await fetch(`${serve.url}${url}`, {
    method: options.method ?? 'GET',
    headers: { authorization: `Bearer ${options.token ?? adminToken(serve.dataDir)}` },
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, body: (await response.json()) as T };
}

export interface Delivery {
  id: number;
  delivery: string;
  alert: string;
  webhook: string;
  kind: string;
  rule: string;
  instance: string | null;
  state: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
}

/** The alert deliveries as GET /api/alerts lists them (asserts the call succeeded). */
export async function deliveries(serve: ServeChild): Promise<Delivery[]> {
  const answer = await api<{ deliveries: Delivery[] }>(serve, '/api/alerts');
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.deliveries;
}

/** Fast settings for tests: evaluation every 100ms, retries from 200ms. */
export function alerts(webhooks: unknown[], rules: unknown[] = [{ on: 'failed' }], delivery: Record<string, unknown> = {}): Record<string, unknown> {
  return { webhooks, rules, interval: '100ms', cooldown: '1m', delivery: { timeout: '3s', backoff: { base: '200ms', max: '1s' }, ...delivery } };
}
