// Tenant metrics end to end, hostile tenants: an endpoint with 100,000 series, one that hangs, one that answers
// garbage and one that sends 50 MB each fail alone, while Tenement's own /metrics never waits for them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { request, waitFor } from '../helpers.ts';
import { NEEDS_PROMTOOL, allRunning, app, instanceMetrics, promtoolCheck, scrape, tenantKernel, value, type Sample } from './tenant-metrics-fixture.ts';

test('hostile endpoints: 100,000 series are capped, a hang, garbage and 50 MB fail alone; /metrics never waits', { timeout: 180_000 }, async (t) => {
  const { kernel } = await tenantKernel(
    t,
    {
      app: app({ timeout: '10s', maxSeries: 1000 }),
      // Its scrape never finishes within the test: if Tenement's /metrics waited for it, every scrape below would time out.
      stuck: app({ timeout: '10m' }),
    },
    { app: ['alice', 'flood', 'garbage', 'huge'], stuck: ['hang'] },
  );
  await waitFor(allRunning(kernel), 'every instance to run', 60_000);
  const failures = async (id: string, reason: string) =>
    value((await scrape(kernel, '/metrics', {}, 10_000)).samples, 'tenement_tenant_metrics_scrape_failures_total', { service: 'app', instance: `app:${id}`, reason }) ?? 0;
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'flood')).up === true, "flood's first scrape", 60_000);
  await waitFor(async () => (await failures('garbage', 'parse')) >= 1, 'garbage to fail as parse', 60_000);
  await waitFor(async () => (await failures('huge', 'too_large')) >= 1, 'the 50 MB body to fail as too_large', 60_000);
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'alice')).up === true, 'alice to be scraped', 60_000);

  // The hanging scrape is in flight the whole time (10 minutes of timeout); /metrics answers meanwhile.
  const hang = kernel.instances.get('stuck', 'hang')!;
  const hangScrapes = async () => Number((await request(`http://${hang.handle!.address.host}:${hang.handle!.address.port}`, 'localhost', '/scrapes')).body);
  await waitFor(async () => (await hangScrapes()) >= 1, 'the hanging endpoint to be asked', 30_000);

  const timings: number[] = [];
  let last: { text: string; samples: Sample[] } | null = null;
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    last = await scrape(kernel, '/metrics', {}, 10_000);
    timings.push(performance.now() - started);
  }
  t.diagnostic(`Tenement /metrics with 1,000 flood series kept and a hanging tenant: ${timings.map((ms) => ms.toFixed(1)).join(', ')} ms`);
  const { samples, text } = last!;
  assert.equal(await hangScrapes(), 1, 'one scrape at a time per instance: the hung one is not piled on');
  assert.equal((await instanceMetrics(kernel, 'stuck', 'hang')).up, null, 'still waiting for its first answer');

  assert.equal(samples.filter((s) => s.name === 'tenant_flood_series').length, 1000, 'capped at maxSeries');
  assert.equal(value(samples, 'tenement_tenant_metrics_series', { service: 'app', instance: 'app:flood' }), 1000);
  const dropped = value(samples, 'tenement_tenant_metrics_dropped_total', { service: 'app', instance: 'app:flood', reason: 'limit' })!;
  assert.ok(dropped >= 99_000 && dropped % 99_000 === 0, `99,000 dropped per scrape, got ${dropped}`);
  assert.equal(value(samples, 'tenement_tenant_metrics_up', { service: 'app', instance: 'app:garbage' }), 0);
  assert.equal(value(samples, 'tenement_tenant_metrics_up', { service: 'app', instance: 'app:huge' }), 0);
  assert.ok(!samples.some((s) => s.labels['instance'] === 'app:garbage' && s.name.startsWith('tenant_')));
  assert.ok(value(samples, 'tenant_app_queue_depth', { service: 'app', instance: 'app:alice', tenant: 'alice' }) === 7.5, 'the well-behaved tenant is unaffected');
  const garbage = await instanceMetrics(kernel, 'app', 'garbage');
  assert.match(garbage.lastError!, /^parse: /);
  assert.deepEqual(garbage.samples, []);
  assert.match((await instanceMetrics(kernel, 'app', 'huge')).lastError!, /^too_large: /);

  // Nothing crashed: every tenant still runs, and the proxy still serves them.
  assert.ok(allRunning(kernel)(), 'every instance still runs');
  assert.equal((await request(kernel, 'alice.app.localhost', '/health')).status, 200);

  await t.test('promtool accepts the exposition with the flood in it', { skip: NEEDS_PROMTOOL }, async () => {
    const checked = await promtoolCheck(text);
    assert.equal(checked.code, 0, checked.output);
  });
});
