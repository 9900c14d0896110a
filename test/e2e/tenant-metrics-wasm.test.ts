// Tenant metrics end to end from a wasm function: it publishes its own metrics through the SDK's host call, and
// they are re-exposed on Tenement's /metrics the same way as a process's scraped ones.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import metrics from '../../plugins/metrics/index.ts';
import tenantMetrics from '../../plugins/tenant-metrics/index.ts';
import { staticAuth, tenant } from '../fixtures/static-auth.ts';
import { FIXTURES, request, servePlugins, waitFor } from '../helpers.ts';
import { NEEDS_PROMTOOL, allRunning, instanceMetrics, promtoolCheck, scrape, value } from './tenant-metrics-fixture.ts';

function jcoMissing(): string | false {
  try {
    import.meta.resolve('@bytecodealliance/jco');
    return false;
  } catch {
    return 'needs @bytecodealliance/jco (npm install: it is a devDependency)';
  }
}

test('a wasm function publishes its own metrics through the SDK host call; they are re-exposed the same way', { skip: jcoMissing(), timeout: 300_000 }, async (t) => {
  const { buildComponent } = await import('../../core/wasm/component/build.ts');
  const { default: wasmRuntime } = await import('../../runtimes/wasm/index.ts');
  const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-tenant-metrics-wasm-'));
  const module = path.join(work, 'metrics-fn.wasm');
  await buildComponent({ source: path.join(FIXTURES, 'wasm-metrics', 'metrics-fn.ts'), out: module });
  const kernel = await createTestKernel({
    plugins: [...servePlugins, wasmRuntime, staticAuth, instancesApi, metrics, tenantMetrics],
    config: {
      settings: { dataDir: path.join(work, 'data') },
      services: { fn: { isolation: 'wasm', module, startupTimeout: '60s', metrics: { path: '/metrics', interval: 100 } } },
      instances: { fn: ['alice', 'bob'] },
    },
  });
  // One hook, closing before removing: the kernel writes into the folder (after-hooks stop at the first that throws).
  t.after(() => kernel.close().finally(() => rmSync(work, { recursive: true, force: true })));

  const call = (tenantId: string, target: string) => request(kernel, `${tenantId}.fn.localhost`, target);
  // The first start transpiles the component: seconds on a loaded machine.
  await waitFor(allRunning(kernel), 'alice and bob to run', 120_000);
  assert.equal((await call('alice', '/order?plan=pro')).status, 204);
  assert.equal((await call('alice', '/order?plan=pro')).status, 204);
  assert.equal((await call('alice', '/order?plan=free')).status, 204);
  assert.equal((await call('bob', '/order?plan=pro')).status, 204);
  assert.equal((await call('alice', '/spoof')).status, 204);
  for (const [target, reason] of [
    ['/proto', /invalid label name "__proto__"/],
    ['/bad-name', /invalid metric name "1 bad"/],
    ['/negative', /a counter only goes up/],
  ] as const) {
    const reply = await call('alice', target);
    assert.equal(reply.status, 400, `${target}: ${reply.body}`);
    assert.match(reply.body, reason);
  }

  const fn = (id: string, extra: Record<string, string> = {}) => ({ service: 'fn', instance: `fn:${id}`, ...extra });
  await waitFor(async () => value((await scrape(kernel)).samples, 'tenant_orders_total', fn('bob', { plan: 'pro' })) === 1, "bob's published counter", 30_000);
  await waitFor(async () => value((await scrape(kernel)).samples, 'tenant_orders_total', fn('alice', { plan: 'pro' })) === 2, "alice's published counter", 30_000);
  // A scrape taken between alice's second order and her /spoof already shows 2 orders: wait for the last thing she
  // published (the refused calls after it publish nothing).
  const spoofed = fn('alice', { exported_service: 'other', exported_instance: 'other:victim' });
  await waitFor(async () => value((await scrape(kernel)).samples, 'tenant_spoof', spoofed) === 1, "alice's last published gauge", 30_000);
  const { text, samples } = await scrape(kernel);
  assert.equal(value(samples, 'tenant_orders_total', fn('alice', { plan: 'free' })), 1, 'the refused negative increment changed nothing');
  assert.equal(value(samples, 'tenant_cart_items', fn('alice', { plan: 'pro' })), 3);
  assert.equal(value(samples, 'tenant_spoof', spoofed), 1);
  assert.match(text, /^# TYPE tenant_orders_total counter$/m);
  assert.match(text, /^# TYPE tenant_cart_items gauge$/m);
  assert.ok(!samples.some((s) => s.name.startsWith('tenant_1')));

  const api = await instanceMetrics(kernel, 'fn', 'alice', tenant('alice'));
  assert.deepEqual(
    api.samples.filter((s) => s.name === 'tenant_orders_total').map((s) => [s.labels['plan'], s.value, s.type]),
    [['pro', 2, 'counter'], ['free', 1, 'counter']],
  );
  assert.equal((await request(kernel, 'localhost', '/api/instances/fn/alice/metrics', { headers: tenant('bob') })).status, 404);

  await t.test('promtool accepts it', { skip: NEEDS_PROMTOOL }, async () => {
    const checked = await promtoolCheck(text);
    assert.equal(checked.code, 0, checked.output);
  });

  // Hibernation ends the run: its series leave /metrics, and the woken instance counts from zero.
  await kernel.hibernate(kernel.instances.get('fn', 'alice')!);
  assert.ok(!(await scrape(kernel)).samples.some((s) => s.labels['instance'] === 'fn:alice' && s.name.startsWith('tenant_')));
  assert.equal((await call('alice', '/order?plan=pro')).status, 204);
  await waitFor(async () => value((await scrape(kernel)).samples, 'tenant_orders_total', fn('alice', { plan: 'pro' })) === 1, 'the counter to start again', 30_000);
});
