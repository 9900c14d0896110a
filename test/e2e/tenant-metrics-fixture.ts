// What the tenant metrics tests share: the metrics app (test/fixtures/metrics-app.mjs) as a service, a kernel with
// the metrics and tenant-metrics plugins whose spawned processes are reaped, scrapes of /metrics parsed into
// samples, the per-instance API's answer, and promtool's check of an exposition.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import metrics from '../../plugins/metrics/index.ts';
import tenantMetrics from '../../plugins/tenant-metrics/index.ts';
import { ADMIN, staticAuth } from '../fixtures/static-auth.ts';
import { FIXTURES, alive, request, servePlugins, waitFor } from '../helpers.ts';

const METRICS_APP = path.join(FIXTURES, 'metrics-app.mjs');
const promtoolMissing = spawnSync('promtool', ['--version']).error !== undefined;
/** Why the promtool checks skip (it is not installed), or false. */
export const NEEDS_PROMTOOL = promtoolMissing ? 'needs promtool (apt-get install prometheus)' : false;

/** `promtool check metrics` on an exposition: its exit code and what it said. */
export function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (comments skipped); label values unescaped. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `unparseable sample line: ${line}`);
    const labels: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [, name, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[name!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3] === 'Nan' ? 'NaN' : match[3]) });
  }
  return samples;
}

/** The value of the one sample `name` with exactly these labels (asserted to be at most one), if any. */
export function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels);
  const found = samples.filter((s) => s.name === name && Object.keys(s.labels).length === wanted.length && wanted.every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} appears ${found.length} times`);
  return found[0]?.value;
}

/** GET `url` (Tenement's /metrics by default), asserted 200: its text and samples. */
export async function scrape(kernel: TestKernel, url = '/metrics', headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<{ text: string; samples: Sample[] }> {
  const reply = await request(kernel, 'localhost', url, { headers, timeoutMs });
  assert.equal(reply.status, 200, reply.body);
  return { text: reply.body, samples: parse(reply.body) };
}

/** What GET /api/instances/:service/:id/metrics answers. */
export interface ApiAnswer {
  service: string;
  instance: string;
  state: string;
  configured: boolean;
  up: boolean | null;
  scrapedAt: string | null;
  lastError: string | null;
  series: number;
  dropped: Record<string, number> | null;
  samples: Array<{ name: string; labels: Record<string, string>; value: number | string; type: string; help: string | null; scrapedAt: string }>;
}

/** GET /api/instances/:service/:id/metrics, as the admin unless other headers are given, asserted 200. */
export async function instanceMetrics(kernel: TestKernel, service: string, id: string, headers: Record<string, string> = ADMIN): Promise<ApiAnswer> {
  const reply = await request(kernel, 'localhost', `/api/instances/${service}/${id}/metrics`, { headers });
  assert.equal(reply.status, 200, reply.body);
  return JSON.parse(reply.body) as ApiAnswer;
}

/** A service of the metrics app, scraped every 200 ms unless `metricsOptions` says otherwise. */
export const app = (metricsOptions: Record<string, unknown>, overrides: Partial<ServiceInput> = {}): ServiceInput => ({
  command: `node ${METRICS_APP}`,
  health: '/health',
  metrics: { path: '/metrics', interval: 200, ...metricsOptions },
  ...overrides,
});

/** A kernel with the serve plugins, static auth, the instances API, metrics and tenant metrics; processes reaped. */
export async function tenantKernel(t: TestContext, services: Record<string, ServiceInput>, instances: Record<string, string[]>): Promise<{ kernel: TestKernel; spawns: Map<string, number> }> {
  const kernel = await createTestKernel({ plugins: [...servePlugins, staticAuth, authBearer, instancesApi, metrics, tenantMetrics], config: { services, instances } });
  const pids: number[] = [];
  const spawns = new Map<string, number>();
  kernel.hooks.stateChange.tap('test-pids', (event) => {
    if (event.type !== 'spawned') return;
    spawns.set(event.instance, (spawns.get(event.instance) ?? 0) + 1);
    const pid = /pid (\d+)/.exec(event.reason ?? '')?.[1];
    if (pid) pids.push(Number(pid));
  });
  t.after(async () => {
    await kernel.close();
    await waitFor(() => pids.every((pid) => !alive(pid)), `spawned processes ${pids.join(', ')} to be gone`, 15_000);
  });
  return { kernel, spawns };
}

/** A check for waitFor: the kernel has instances and every one of them runs. */
export const allRunning = (kernel: TestKernel) => () => kernel.instances.list().length > 0 && kernel.instances.list().every((i) => i.state === 'running');
