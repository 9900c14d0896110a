// Tenant metrics end to end, when scraping starts and stops: a hibernated instance is never woken to be scraped
// and its series leave /metrics until it runs again; a config reload takes a service's metrics away or adds them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { tenant } from '../fixtures/static-auth.ts';
import { request, sleep, waitFor } from '../helpers.ts';
import { app, instanceMetrics, scrape, tenantKernel, value } from './tenant-metrics-fixture.ts';

test('a hibernated instance is never woken to be scraped; its series leave /metrics until it runs again', { timeout: 120_000 }, async (t) => {
  // Scraped every 100ms, idle after 1.5s: scrapes are not traffic, so it goes to sleep anyway.
  const { kernel, spawns } = await tenantKernel(t, { app: app({ interval: 100 }, { idleTimeout: '1500ms' }) }, { app: ['alice'] });
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'alice')).up === true, "alice's first scrape", 30_000);
  const alice = kernel.instances.get('app', 'alice')!;
  await waitFor(() => alice.state === 'hibernated', 'alice to hibernate although she is scraped', 30_000);
  assert.equal(spawns.get('app:alice'), 1);

  const asleep = await scrape(kernel);
  assert.ok(!asleep.samples.some((s) => s.name.startsWith('tenant_')), 'no tenant series while asleep');
  assert.ok(!asleep.samples.some((s) => s.name === 'tenement_tenant_metrics_series' && s.labels['instance'] === 'app:alice' && s.value > 0));
  const api = await instanceMetrics(kernel, 'app', 'alice', tenant('alice'));
  assert.equal(api.state, 'hibernated');
  assert.deepEqual(api.samples, []);

  // Ten intervals later she still sleeps: nothing scraped her.
  await sleep(1_000);
  assert.equal(alice.state, 'hibernated');
  assert.equal(spawns.get('app:alice'), 1, 'never started again for a scrape');

  // A real request wakes her; the next scrape brings her series back.
  assert.equal((await request(kernel, 'alice.app.localhost', '/health')).status, 200);
  await waitFor(async () => value((await scrape(kernel)).samples, 'tenant_app_queue_depth', { service: 'app', instance: 'app:alice', tenant: 'alice' }) === 7.5, 'her series to return', 30_000);
  assert.equal(spawns.get('app:alice'), 2);
});

test('a config reload that takes a service’s metrics away takes its series away; one that adds them starts scraping', { timeout: 120_000 }, async (t) => {
  const { resolveConfig } = await import('../../core/config/loader.ts');
  const { kernel } = await tenantKernel(t, { app: app({ interval: 100 }) }, { app: ['alice'] });
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'alice')).up === true, "alice's first scrape", 30_000);
  const settings = { ...kernel.config.settings };
  const reload = (service: ServiceInput) =>
    kernel.reload(resolveConfig({ settings, services: { app: service }, instances: { app: ['alice'] } }, { path: null, dir: process.cwd() }));
  const { metrics: _off, ...withoutMetrics } = app({});
  await reload(withoutMetrics);
  // Taken away on the scraper's next tick.
  await waitFor(
    async () => !(await scrape(kernel)).samples.some((s) => s.name.startsWith('tenant_') || s.name.startsWith('tenement_tenant_metrics_')),
    'nothing left of it',
    30_000,
  );
  assert.equal((await instanceMetrics(kernel, 'app', 'alice')).configured, false);
  await reload(app({ interval: 100 }));
  await waitFor(async () => value((await scrape(kernel)).samples, 'tenant_app_queue_depth', { service: 'app', instance: 'app:alice', tenant: 'alice' }) === 7.5, 'scraping again', 30_000);
});
