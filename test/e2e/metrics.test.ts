// The metrics plugin end to end: real instances, real proxied traffic, a real wake, a real kill -9 and a real
// failing health check, then the exposition as Prometheus would scrape it (checked by promtool when installed).
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import metrics, { type MetricsOptions } from '../../plugins/metrics/index.ts';
import { ADMIN, staticAuth, tenant } from '../fixtures/static-auth.ts';
import { NEEDS_PROMTOOL, parseExposition, promtoolCheck, value, type Sample } from '../exposition.ts';
import { echoService, reapSpawns, request, servePlugins, waitFor } from '../helpers.ts';

async function scrape(kernel: TestKernel, url = '/metrics', headers: Record<string, string> = {}): Promise<{ text: string; samples: Sample[] }> {
  const reply = await request(kernel, 'localhost', url, { headers });
  assert.equal(reply.status, 200, reply.body);
  assert.equal(reply.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  return { text: reply.body, samples: parseExposition(reply.body) };
}

/** A kernel with the serve plugins, static auth and metrics; every process it spawned must be gone afterwards. */
async function metricsKernel(
  t: TestContext,
  services: Record<string, ServiceInput>,
  instances: Record<string, string[]>,
  options?: MetricsOptions,
): Promise<TestKernel> {
  const kernel = await createTestKernel({
    plugins: [...servePlugins, staticAuth, options ? [metrics, options] : metrics],
    config: { services, instances },
  });
  reapSpawns(t, kernel);
  return kernel;
}

const running = (kernel: TestKernel, id: string) => () => kernel.instances.get('echo', id)?.state === 'running';

test('requests, wakes, restarts, health failures and usage are measured; the exposition passes promtool', { timeout: 120_000 }, async (t) => {
  const kernel = await metricsKernel(
    t,
    // Frequent health checks that never add up to a restart, so failures can be counted on a running instance.
    { echo: echoService({ health: { path: '/health', interval: 100, failures: 1_000_000 }, backoff: { base: 50, max: 100 } }) },
    { echo: ['alice', 'bob'] },
  );
  await waitFor(running(kernel, 'alice'), 'alice to run');
  await waitFor(running(kernel, 'bob'), 'bob to run');
  const alice = kernel.instances.get('echo', 'alice')!;
  const bob = kernel.instances.get('echo', 'bob')!;

  for (let i = 0; i < 3; i++) assert.equal((await request(kernel, 'alice.echo.localhost', '/echo')).status, 200);
  assert.equal((await request(kernel, 'alice.echo.localhost', '/hop-response?status=404')).status, 404);
  assert.equal((await request(kernel, 'bob.echo.localhost', '/hop-response?status=503')).status, 503);

  // A client that gives up before the answer (a TCP reset: a plain FIN is a legal half-close, and the proxy
  // would still deliver the response): the exchange ends without a status.
  const url = new URL(kernel.url);
  const quitter = net.connect(Number(url.port), url.hostname);
  quitter.on('error', () => undefined);
  quitter.write('GET /slow?ms=3000 HTTP/1.1\r\nHost: bob.echo.localhost\r\n\r\n');
  await waitFor(() => bob.inFlight === 1, 'the slow request to reach bob');
  quitter.resetAndDestroy();

  // A wake: hibernate alice, then one request brings her back.
  await kernel.hibernate(alice);
  assert.equal(alice.state, 'hibernated');
  assert.equal((await request(kernel, 'alice.echo.localhost', '/echo')).status, 200);

  // A crash: kill -9 bob, the restart policy brings him back.
  const bobPid = bob.handle!.pid!;
  process.kill(bobPid, 'SIGKILL');
  await waitFor(() => bob.state === 'running' && bob.handle !== null && bob.handle.pid !== bobPid, 'bob to be restarted', 20_000);

  // Failing health checks on a running instance.
  const flag = path.join(kernel.instanceDir('echo', 'alice'), 'unhealthy');
  writeFileSync(flag, '');
  await waitFor(async () => (value((await scrape(kernel)).samples, 'tenement_health_check_failures_total', { service: 'echo', instance: 'echo:alice' }) ?? 0) >= 2, 'health failures to be counted');
  rmSync(flag);

  await waitFor(
    async () => value((await scrape(kernel)).samples, 'tenement_requests_total', { service: 'echo', instance: 'echo:bob', code_class: 'aborted' }) === 1,
    'the abandoned request to be counted',
  );
  const { text, samples } = await scrape(kernel);
  const requests = (instance: string, code_class: string) => value(samples, 'tenement_requests_total', { service: 'echo', instance, code_class });
  assert.equal(requests('echo:alice', '2xx'), 4);
  assert.equal(requests('echo:alice', '4xx'), 1);
  assert.equal(requests('echo:bob', '5xx'), 1);
  assert.equal(requests('echo:bob', '2xx'), undefined, 'classes never seen are not reported');
  assert.equal(value(samples, 'tenement_request_duration_seconds_count', { service: 'echo' }), 7);
  assert.equal(value(samples, 'tenement_request_duration_seconds_bucket', { service: 'echo', le: '+Inf' }), 7);
  assert.ok(value(samples, 'tenement_request_duration_seconds_sum', { service: 'echo' })! > 0);

  assert.equal(value(samples, 'tenement_wake_duration_seconds_count', { service: 'echo' }), 1);
  assert.ok(value(samples, 'tenement_wake_duration_seconds_sum', { service: 'echo' })! > 0);
  assert.equal(value(samples, 'tenement_wake_queue_wait_seconds_count', { service: 'echo' }), 1);
  assert.ok(value(samples, 'tenement_wake_queue_wait_seconds_sum', { service: 'echo' })! > 0);

  assert.equal(value(samples, 'tenement_instance_restarts_total', { service: 'echo', instance: 'echo:bob' }), 1);
  assert.equal(value(samples, 'tenement_instance_restarts_total', { service: 'echo', instance: 'echo:alice' }), 0);
  // Checks run every 100ms: one may be in flight when bob is killed, and fail. Nothing else may.
  assert.ok((value(samples, 'tenement_health_check_failures_total', { service: 'echo', instance: 'echo:bob' }) ?? 0) <= 1);

  assert.equal(value(samples, 'tenement_instances', { service: 'echo', state: 'running' }), 2);
  assert.equal(value(samples, 'tenement_instances', { service: 'echo', state: 'hibernated' }), 0);
  assert.equal(value(samples, 'tenement_instance_state', { service: 'echo', instance: 'echo:alice', state: 'running', tier: 'process' }), 1);
  assert.equal(value(samples, 'tenement_proxy_in_flight_requests', { service: 'echo' }), 0);
  for (const instance of ['echo:alice', 'echo:bob']) {
    assert.ok(value(samples, 'tenement_instance_cpu_seconds_total', { service: 'echo', instance })! > 0, `${instance} used some CPU`);
    assert.ok(value(samples, 'tenement_instance_resident_memory_bytes', { service: 'echo', instance })! > 1_000_000, `${instance} uses memory`);
  }
  assert.ok(value(samples, 'tenement_hook_calls_total', { hook: 'request', plugin: 'metrics' })! >= 7);
  assert.ok(value(samples, 'process_resident_memory_bytes', {})! > 0, 'the Tenement process itself is measured');

  await t.test('promtool check metrics accepts it', { skip: NEEDS_PROMTOOL }, async () => {
    const checked = await promtoolCheck(text);
    assert.equal(checked.code, 0, checked.output);
  });

  // A removed instance takes its series with it.
  await kernel.removeInstance(bob);
  const after = (await scrape(kernel)).samples;
  assert.deepEqual(after.filter((s) => s.labels['instance'] === 'echo:bob'), []);
  assert.equal(value(after, 'tenement_requests_total', { service: 'echo', instance: 'echo:alice', code_class: '2xx' }), 4);
  assert.equal(value(after, 'tenement_instances', { service: 'echo', state: 'running' }), 1);
});

test('/metrics needs no token; /api/metrics does, and a tenant sees only its own instances', { timeout: 120_000 }, async (t) => {
  const kernel = await metricsKernel(t, { echo: echoService(), other: echoService() }, { echo: ['alice', 'bob'], other: ['alice'] });
  await waitFor(() => kernel.instances.list().every((i) => i.state === 'running'), 'every instance to run');
  for (const host of ['alice.echo.localhost', 'bob.echo.localhost', 'alice.other.localhost']) {
    assert.equal((await request(kernel, host, '/echo')).status, 200);
  }

  const anonymous = await request(kernel, 'localhost', '/api/metrics');
  assert.equal(anonymous.status, 401);
  assert.equal(JSON.parse(anonymous.body).error.code, 'TNM_ERR_UNAUTHORIZED');

  const admin = await scrape(kernel, '/api/metrics', ADMIN);
  assert.equal(value(admin.samples, 'tenement_requests_total', { service: 'echo', instance: 'echo:bob', code_class: '2xx' }), 1);
  assert.ok(admin.samples.some((s) => s.name === 'tenement_instances'));

  const mine = await scrape(kernel, '/api/metrics', tenant('alice'));
  const instances = new Set(mine.samples.map((s) => s.labels['instance']));
  assert.deepEqual([...instances].sort(), ['echo:alice', 'other:alice'], 'only series of her own instances, in every service');
  assert.equal(value(mine.samples, 'tenement_requests_total', { service: 'echo', instance: 'echo:alice', code_class: '2xx' }), 1);
  assert.equal(value(mine.samples, 'tenement_requests_total', { service: 'other', instance: 'other:alice', code_class: '2xx' }), 1);
  assert.equal(value(mine.samples, 'tenement_instance_restarts_total', { service: 'echo', instance: 'echo:alice' }), 0);
  assert.ok(value(mine.samples, 'tenement_instance_resident_memory_bytes', { service: 'echo', instance: 'echo:alice' })! > 0);
  for (const shared of ['tenement_instances', 'tenement_request_duration_seconds_count', 'process_resident_memory_bytes']) {
    assert.ok(!mine.samples.some((s) => s.name === shared), `${shared} mixes tenants and is not shown to one`);
  }
  assert.doesNotMatch(mine.text, /bob/);

  const nobody = await request(kernel, 'localhost', '/api/metrics', { headers: tenant('carol') });
  assert.equal(nobody.status, 200);
  assert.equal(nobody.body, '', 'a tenant without instances sees nothing');

  await t.test('promtool accepts the tenant view too', { skip: NEEDS_PROMTOOL }, async () => {
    const checked = await promtoolCheck(mine.text);
    assert.equal(checked.code, 0, checked.output);
  });
});

test('with public: false, /metrics is not served and scrapers use /api/metrics with a token', { timeout: 60_000 }, async (t) => {
  const kernel = await metricsKernel(t, { echo: echoService() }, {}, { public: false, processMetrics: false });
  assert.equal((await request(kernel, 'localhost', '/metrics')).status, 404);
  const admin = await scrape(kernel, '/api/metrics', ADMIN);
  assert.equal(value(admin.samples, 'tenement_instances', { service: 'echo', state: 'running' }), 0);
  assert.ok(!admin.samples.some((s) => s.name.startsWith('process_')), 'no process metrics when switched off');
});

test('health failures that end in a restart are all counted, and the restart too', { timeout: 60_000 }, async (t) => {
  const kernel = await metricsKernel(
    t,
    { echo: echoService({ health: { path: '/health', interval: 100, failures: 2 }, backoff: { base: 50, max: 100 } }) },
    { echo: ['alice'] },
  );
  await waitFor(running(kernel, 'alice'), 'alice to run');
  const alice = kernel.instances.get('echo', 'alice')!;
  const flag = path.join(kernel.instanceDir('echo', 'alice'), 'unhealthy');
  // Healthy again as soon as the monitor gives up on it, so the restarted process passes its readiness probes.
  kernel.hooks.stateChange.tap('test-heal', (event) => {
    if (event.type === 'unhealthy') rmSync(flag, { force: true });
  });
  writeFileSync(flag, '');
  await waitFor(() => alice.restarts === 1 && alice.state === 'running' && alice.consecutiveHealthFailures === 0, 'alice to be restarted', 20_000);

  const { samples } = await scrape(kernel);
  assert.equal(value(samples, 'tenement_health_check_failures_total', { service: 'echo', instance: 'echo:alice' }), 2);
  assert.equal(value(samples, 'tenement_instance_restarts_total', { service: 'echo', instance: 'echo:alice' }), 1);
});
