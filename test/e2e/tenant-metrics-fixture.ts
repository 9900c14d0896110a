// What the tenant metrics tests share: the metrics app (test/fixtures/metrics-app.mjs) as a service, a kernel with
// the metrics and tenant-metrics plugins whose spawned processes are reaped, scrapes of /metrics parsed into
// samples, the per-instance API's answer, and promtool's check of an exposition.
import assert from 'node:assert/strict';
import path from 'node:path';
import type { TestContext } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import metrics from '../../plugins/metrics/index.ts';
import tenantMetrics from '../../plugins/tenant-metrics/index.ts';
import type { InstanceMetricsAnswer } from '../../plugins/tenant-metrics/routes.ts';
import { ADMIN, staticAuth } from '../fixtures/static-auth.ts';
import { parseExposition, type Sample } from '../exposition.ts';
import { FIXTURES, reapSpawns, request, servePlugins } from '../helpers.ts';

const METRICS_APP = path.join(FIXTURES, 'metrics-app.mjs');
export { NEEDS_PROMTOOL, promtoolCheck, value, type Sample } from '../exposition.ts';

/** GET `url` (Tenement's /metrics by default), asserted 200: its text and samples. */
export async function scrape(kernel: TestKernel, url = '/metrics', headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<{ text: string; samples: Sample[] }> {
  const reply = await request(kernel, 'localhost', url, { headers, timeoutMs });
  assert.equal(reply.status, 200, reply.body);
  return { text: reply.body, samples: parseExposition(reply.body) };
}

/** What GET /api/instances/:service/:id/metrics answers. */
export type ApiAnswer = InstanceMetricsAnswer;

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
  return { kernel, spawns: reapSpawns(t, kernel).spawns };
}

/** A check for waitFor: the kernel has instances and every one of them runs. */
export const allRunning = (kernel: TestKernel) => () => kernel.instances.list().length > 0 && kernel.instances.list().every((i) => i.state === 'running');
