// Tenant metrics end to end, the exposition: real instances serving their own /metrics, scraped by the
// tenant-metrics plugin and re-exposed on Tenement's /metrics as tenant_* series, checked by promtool; the
// per-instance API and `ten metrics` with tenant tokens; and labels named like Tenement's own.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ADMIN, tenant } from '../fixtures/static-auth.ts';
import { ROOT, request, waitFor } from '../helpers.ts';
import { NEEDS_PROMTOOL, allRunning, app, instanceMetrics, promtoolCheck, scrape, tenantKernel, value, type ApiAnswer } from './tenant-metrics-fixture.ts';

test('tenant samples are re-exposed as tenant_* with service and instance, pass promtool, and answer in the API', { timeout: 120_000 }, async (t) => {
  const { kernel } = await tenantKernel(t, { app: app({}) }, { app: ['alice', 'bob'] });
  await waitFor(allRunning(kernel), 'alice and bob to run', 30_000);
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'bob')).up === true, "bob's first scrape", 30_000);
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'alice')).up === true, "alice's first scrape", 30_000);

  const { text, samples } = await scrape(kernel);
  const labels = (id: string, extra: Record<string, string> = {}) => ({ service: 'app', instance: `app:${id}`, ...extra });
  assert.ok(value(samples, 'tenant_app_requests_total', labels('alice', { method: 'get', path: '/' }))! >= 1, 'the counter of scrapes');
  assert.equal(value(samples, 'tenant_app_requests_total', labels('bob', { method: 'post', path: '/items' })), 3);
  assert.equal(value(samples, 'tenant_app_queue_depth', labels('alice', { tenant: 'alice' })), 7.5, 'the timestamp is left out');
  assert.equal(value(samples, 'tenant_app_latency_seconds_bucket', labels('alice', { le: '+Inf' })), 3);
  assert.equal(value(samples, 'tenant_app_latency_seconds_count', labels('bob')), 3);
  assert.equal(value(samples, 'tenant_app_size_bytes', labels('bob', { quantile: '0.99' })), 900);
  assert.ok(Number.isNaN(value(samples, 'tenant_app_odd_values', labels('alice', { kind: 'nan' }))!));
  assert.equal(value(samples, 'tenant_app_label_text', labels('alice', { text: 'a "quoted" \\ line\nbreak' })), 1);
  assert.match(text, /^# TYPE tenant_app_latency_seconds histogram$/m);
  assert.match(text, /^# HELP tenant_app_requests_total Requests the app served\.$/m);
  assert.equal(text.match(/^# TYPE tenant_app_requests_total /gm)?.length, 1, 'one family for both instances');
  assert.equal(value(samples, 'tenement_tenant_metrics_up', labels('alice')), 1);
  assert.equal(value(samples, 'tenement_tenant_metrics_series', labels('alice')), 16);

  await t.test('promtool check metrics accepts the whole exposition', { skip: NEEDS_PROMTOOL }, async () => {
    const checked = await promtoolCheck(text);
    assert.equal(checked.code, 0, checked.output);
  });

  // The API: the instance's own samples, JSON-safe values, for the admin and for the tenant itself.
  const mine = await instanceMetrics(kernel, 'app', 'alice', tenant('alice'));
  assert.equal(mine.instance, 'app:alice');
  assert.equal(mine.configured, true);
  assert.equal(mine.series, 16);
  const odd = mine.samples.filter((s) => s.name === 'tenant_app_odd_values').map((s) => [s.labels['kind'], s.value]);
  assert.deepEqual(odd, [['nan', 'NaN'], ['inf', '+Inf'], ['escaped', -1500]]);
  const bucket = mine.samples.find((s) => s.name === 'tenant_app_latency_seconds_bucket' && s.labels['le'] === '1');
  assert.deepEqual({ ...bucket, scrapedAt: undefined }, { name: 'tenant_app_latency_seconds_bucket', labels: { le: '1' }, value: 2, type: 'histogram', help: 'Request latency.', scrapedAt: undefined });
  assert.ok(Date.parse(mine.scrapedAt!) > 0);

  // Another tenant's metrics answer exactly what a missing instance does; so does a name that is not one.
  for (const [url, headers] of [
    ['/api/instances/app/alice/metrics', tenant('bob')],
    ['/api/instances/app/carol/metrics', tenant('carol')],
    ['/api/instances/app/nobody/metrics', ADMIN],
  ] as const) {
    const reply = await request(kernel, 'localhost', url, { headers });
    assert.equal(reply.status, 404, `${url}: ${reply.body}`);
    assert.equal(JSON.parse(reply.body).error.code, 'TNM_ERR_UNKNOWN_INSTANCE');
  }
  const bad = await request(kernel, 'localhost', '/api/instances/app/__proto__/metrics', { headers: ADMIN });
  assert.equal(bad.status, 400, bad.body);
  assert.equal((await request(kernel, 'localhost', '/api/instances/app/alice/metrics')).status, 401);

  // /api/metrics with a tenant token: its own tenant_ series come along, nobody else's.
  const aliceView = await scrape(kernel, '/api/metrics', tenant('alice'));
  assert.ok(value(aliceView.samples, 'tenant_app_queue_depth', labels('alice', { tenant: 'alice' })) === 7.5);
  assert.doesNotMatch(aliceView.text, /bob/);

  await t.test('ten metrics prints them', async () => {
    const token = readFileSync(path.join(kernel.config.settings.dataDir, 'admin.token'), 'utf8').trim();
    const ten = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const env = { ...process.env, NO_COLOR: '1', TENEMENT_SERVER: kernel.url, TENEMENT_TOKEN: token };
        execFile(process.execPath, [path.join(ROOT, 'bin', 'ten.mjs'), ...args], { timeout: 60_000, env }, (error, stdout, stderr) =>
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
        );
      });
    const text = await ten(['metrics', 'app:alice']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^app:alice running, scraped .*, 16 series$/m);
    assert.match(text.stdout, /^tenant_app_queue_depth +\{tenant="alice"\} +7\.5 +gauge$/m);
    const json = await ten(['metrics', 'app:alice', '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal((JSON.parse(json.stdout) as ApiAnswer).series, 16);
    const missing = await ten(['metrics', 'app:nobody']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /TNM_ERR_UNKNOWN_INSTANCE|unknown instance/);
  });

  // A removed instance takes its series and its counters with it.
  await kernel.removeInstance(kernel.instances.get('app', 'bob')!);
  const after = await scrape(kernel);
  assert.deepEqual(after.samples.filter((s) => s.labels['instance'] === 'app:bob'), []);
  assert.ok(value(after.samples, 'tenant_app_requests_total', labels('alice', { method: 'post', path: '/items' })) === 3);
});

test("a tenant's own service and instance labels are kept as exported_*, reserved ones dropped, a type clash left out", { timeout: 120_000 }, async (t) => {
  const { kernel } = await tenantKernel(t, { app: app({}) }, { app: ['alice'] });
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'alice')).up === true, "alice's first scrape", 30_000);
  // Alice's app_requests_total (a counter) is exposed first; spoof serves the same name as a gauge.
  await kernel.spawnInstance('app', 'spoof');
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'spoof')).up === true, "spoof's first scrape", 30_000);

  const { text, samples } = await scrape(kernel);
  const spoofed = samples.filter((s) => s.name === 'tenant_spoof_a');
  const expected: Array<Record<string, string>> = [
    { service: 'app', instance: 'app:spoof', exported_instance: 'other:victim', exported_service: 'other' },
    { service: 'app', instance: 'app:spoof', constructor: 'c', prototype: 'p' },
  ];
  assert.deepEqual(spoofed.map((s) => ({ ...s.labels })), expected);
  assert.ok(!samples.some((s) => s.labels['instance'] !== undefined && s.labels['instance'] !== 'app:spoof' && s.labels['instance'] !== 'app:alice'), 'no sample claims another instance');
  assert.doesNotMatch(text, /__proto__|polluted/);
  assert.equal(value(samples, 'tenement_tenant_metrics_dropped_total', { service: 'app', instance: 'app:spoof', reason: 'invalid' })! % 2, 0, 'two dropped per scrape');
  assert.ok(value(samples, 'tenement_tenant_metrics_dropped_total', { service: 'app', instance: 'app:spoof', reason: 'invalid' })! >= 2);
  assert.ok(value(samples, 'tenement_tenant_metrics_dropped_total', { service: 'app', instance: 'app:spoof', reason: 'conflict' })! >= 1);
  assert.equal(value(samples, 'tenant_app_requests_total', { service: 'app', instance: 'app:spoof' }), undefined, "the gauge is left out of alice's counter family");
  assert.ok(value(samples, 'tenant_app_requests_total', { service: 'app', instance: 'app:alice', method: 'get', path: '/' })! >= 1);
  assert.equal(Object.getPrototypeOf({}), Object.prototype);

  // In its own API view the clashing gauge is still there: the conflict is about the shared exposition only.
  const own = await instanceMetrics(kernel, 'app', 'spoof', tenant('spoof'));
  assert.deepEqual(
    own.samples.filter((s) => s.name === 'tenant_app_requests_total').map((s) => [s.type, s.value]),
    [['gauge', 99]],
  );

  await t.test('promtool still accepts the exposition', { skip: NEEDS_PROMTOOL }, async () => {
    const checked = await promtoolCheck(text);
    assert.equal(checked.code, 0, checked.output);
  });
});
