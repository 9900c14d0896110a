// Bounded autoCreate (issue 18, item 10): before, 40 anonymous requests to new ids started 40 processes and
// persisted them across restarts. Now a per-service cap (503) and a per-address allowance (429 + Retry-After)
// bound it, and a refused request spawns and persists nothing.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { resolveConfig } from '../../core/config/loader.ts';
import type { ConfigInput } from '../../core/config/schema.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import { AddressAllowance, addressKey } from '../../core/auto-create.ts';
import { echoService, request, servePlugins, type Reply, trackedKernel, waitFor } from '../helpers.ts';

const code = (reply: Reply): string | undefined => (JSON.parse(reply.body) as { error?: { code: string } }).error?.code;

test('40 requests to new ids from one address: only the allowance is created and spawned, the rest are 429 with Retry-After, and only the created ones persist', { timeout: 180_000 }, async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-autocreate-'));
  const services = { auto: echoService({ autoCreate: { max: 100, perAddress: { count: 5, window: '1h' } } }) };
  const { kernel, spawns } = await trackedKernel(t, services, { settings: { dataDir, healthInterval: '1h' } });

  const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => request(kernel, `t${i}.auto.localhost`, '/echo')));
  const served = replies.filter((reply) => reply.status === 200);
  const limited = replies.filter((reply) => reply.status === 429);
  assert.equal(served.length, 5, replies.map((r) => r.status).join(' '));
  assert.equal(limited.length, 35);
  for (const reply of limited) {
    assert.equal(code(reply), 'TNM_ERR_RATE_LIMITED');
    assert.ok(Number(reply.headers['retry-after']) >= 1, `Retry-After: ${String(reply.headers['retry-after'])}`);
  }
  assert.equal(spawns.size, 5, 'five processes were started');
  assert.equal(kernel.instances.size, 5);
  assert.equal(kernel.store.listInstances().length, 5, 'only the created ones were persisted');
  // Existing instances are not new ones: they keep serving from the same address.
  const createdIds = served.map((reply) => String(reply.headers['x-instance']).split(':')[1]!);
  for (const id of createdIds) assert.equal((await request(kernel, `${id}.auto.localhost`, '/echo')).status, 200);
  // Another address has its own allowance.
  const other = await request(kernel, 'other.auto.localhost', '/echo', { localAddress: '127.0.0.2' });
  assert.equal(other.status, 200, other.body);
  assert.equal(kernel.instances.size, 6);
  await kernel.close();

  // On the same data dir, the next run knows exactly the instances that were created.
  const again = await createTestKernel({ plugins: servePlugins, config: { settings: { dataDir, healthInterval: '1h' }, services } });
  // Added after every close (trackedKernel's first): the kernels write into the folder, and after-hooks stop at the
  // first that throws.
  t.after(() => again.close().finally(() => rmSync(dataDir, { recursive: true, force: true })));
  assert.deepEqual(
    again.instances
      .list()
      .map((i) => i.id)
      .sort(),
    [...createdIds, 'other'].sort(),
  );
});

test('the per-service cap answers 503 TNM_ERR_AUTO_CREATE_LIMIT and spawns nothing; auto-created instances stay out of the weighted pool', { timeout: 120_000 }, async (t) => {
  const { kernel, spawns } = await trackedKernel(
    t,
    {
      capped: echoService({ autoCreate: { max: 3, perAddress: { count: 100 } } }),
      open: echoService({ autoCreate: true, tenants: { maxWeight: 10 } }),
    },
    { settings: { healthInterval: '1h' } },
  );
  for (const id of ['a', 'b', 'c']) assert.equal((await request(kernel, `${id}.capped.localhost`, '/echo')).status, 200);
  const refused = await request(kernel, 'd.capped.localhost', '/echo');
  assert.equal(refused.status, 503, refused.body);
  assert.equal(code(refused), 'TNM_ERR_AUTO_CREATE_LIMIT');
  assert.equal(kernel.instances.get('capped', 'd'), undefined);
  assert.ok(!kernel.store.listInstances().some((row) => row.id === 'd'), 'nothing persisted');
  assert.equal(spawns.get('capped:d'), undefined, 'nothing spawned');
  assert.equal((await request(kernel, 'a.capped.localhost', '/echo')).status, 200, 'the existing ones still serve');

  // A visitor's instance gets min(weight, tenants.maxWeight): 0 by default, so capped.localhost has no candidate.
  assert.equal(kernel.instances.get('capped', 'a')!.weight, 0);
  const weighted = await request(kernel, 'capped.localhost', '/echo');
  assert.equal(weighted.status, 503);
  assert.equal(code(weighted), 'TNM_ERR_NO_HEALTHY_INSTANCE');
  assert.equal((await request(kernel, 'x.open.localhost', '/echo')).status, 200);
  assert.equal(kernel.instances.get('open', 'x')!.weight, 10);
});

test('autoCreate: true means at most 100 instances and 10 a minute per address; bad bounds are config errors', () => {
  const resolve = (autoCreate: unknown) =>
    resolveConfig({ services: { s: { command: 'x', autoCreate } } } as ConfigInput, { path: null, dir: '/' }).services.s!.autoCreate;
  assert.deepEqual(resolve(true), { max: 100, perAddress: { count: 10, window: 60_000 } });
  assert.equal(resolve(false), false);
  assert.equal(resolve(undefined), false);
  assert.deepEqual(resolve({ max: 5 }), { max: 5, perAddress: { count: 10, window: 60_000 } });
  assert.deepEqual(resolve({ perAddress: { count: 2, window: '10s' } }), { max: 100, perAddress: { count: 2, window: 10_000 } });
  for (const bad of [{ max: 0 }, { max: 1.5 }, { perAddress: { count: 0 } }, { perAddress: { window: 0 } }, { limit: 3 }, 'yes']) {
    assert.throws(() => resolve(bad), /TNM_ERR_CONFIG_INVALID|autoCreate/, JSON.stringify(bad));
  }
});

test('the per-address table is bounded, counts IPv6 clients by /64 and refills over its window', () => {
  const allowance = new AddressAllowance(2, 60_000, 100);
  for (let i = 0; i < 1_000; i++) allowance.take(`10.0.${i >> 8}.${i & 255}`, 0);
  assert.equal(allowance.size, 100, 'never more than maxAddresses');

  assert.equal(addressKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:2:ffff:ffff:ffff:ffff'));
  assert.notEqual(addressKey('2001:db8:1:2::1'), addressKey('2001:db8:1:3::1'));
  assert.equal(addressKey('::1'), '0:0:0:0::/64');

  const bucket = new AddressAllowance(2, 60_000);
  assert.equal(bucket.retryAfter('2001:db8::1', 0), 0);
  bucket.take('2001:db8::1', 0);
  bucket.take('2001:db8::2', 0);
  assert.equal(bucket.retryAfter('2001:db8::3', 0), 30, 'the same /64 shares one allowance: one more after 30 s');
  assert.equal(bucket.retryAfter('2001:db8::3', 30_000), 0);
  assert.equal(bucket.retryAfter('192.0.2.1', 0), 0, 'another client is not affected');
});

test('a refused creation leaves nothing behind while instances of the service keep waking normally', { timeout: 120_000 }, async (t) => {
  const { kernel, spawns } = await trackedKernel(t, { auto: echoService({ autoCreate: { max: 2, perAddress: { count: 1, window: '1h' } } }) }, { settings: { healthInterval: '1h' } });
  assert.equal((await request(kernel, 'one.auto.localhost', '/echo')).status, 200);
  const limited = await request(kernel, 'two.auto.localhost', '/echo');
  assert.equal(limited.status, 429);
  assert.equal(code(limited), 'TNM_ERR_RATE_LIMITED');
  assert.equal(kernel.instances.size, 1);
  // The one instance hibernates and wakes on its next request from the same, exhausted address.
  await kernel.hibernate(kernel.instances.get('auto', 'one')!);
  await waitFor(() => kernel.instances.get('auto', 'one')!.state === 'hibernated', 'hibernated');
  assert.equal((await request(kernel, 'one.auto.localhost', '/echo')).status, 200);
  assert.deepEqual(Object.fromEntries(spawns), { 'auto:one': 2 });
});
