// Names are data (issue 18, item 6) as services and instances: a service named constructor with instances named
// tostring, constructor and prototype works end to end and across a restart, and a stored instance of such a
// service that left the config is skipped at boot (before the fix it started with Object as its config).
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { defaultPlugins } from '../../cli/default-plugins.ts';
import type { ConfigInput } from '../../core/config/schema.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import { echoService, waitFor } from '../helpers.ts';
import { QUIET, adminToken, assertNoGhost, assertServing, bearer, call, codeOf, tenantToken } from './names-fixture.ts';

test('a service named constructor with instances named tostring, constructor and prototype works end to end, across a restart', { timeout: 180_000 }, async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-names-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const config: ConfigInput = {
    settings: { dataDir, ...QUIET },
    services: {
      constructor: echoService({ tenants: { create: true, maxWeight: 50 } }),
      prototype: echoService({ autoCreate: true }),
    },
    instances: { constructor: ['tostring', 'constructor'] },
  };
  const first = await createTestKernel({ plugins: defaultPlugins, config });
  try {
    await waitFor(() => first.instances.list().every((i) => i.state === 'running') && first.instances.size === 2, 'both running', 30_000);
    const admin = bearer(adminToken(first));
    const direct = await call(first, 'GET', '/echo', {}, undefined, 'tostring.constructor.localhost');
    assert.equal(direct.status, 200, direct.body);
    assert.equal(direct.headers['x-instance'], 'constructor:tostring');
    const weighted = await call(first, 'GET', '/echo', {}, undefined, 'constructor.localhost');
    assert.equal(weighted.status, 200, weighted.body);
    assert.match(String(weighted.headers['x-instance']), /^constructor:(tostring|constructor)$/);

    // The API on it: read, weigh, restart, hibernate, wake, with the admin token and the instance's own tenant.
    const own = bearer(await tenantToken(first, admin, 'tostring'));
    const got = await call(first, 'GET', '/api/instances/constructor/tostring', own);
    assert.equal(got.status, 200, got.body);
    assert.equal((JSON.parse(got.body) as { key: string }).key, 'constructor:tostring');
    assert.equal((await call(first, 'PUT', '/api/instances/constructor/tostring/weight', own, { weight: 40 })).status, 200);
    assert.equal((await call(first, 'POST', '/api/instances/constructor/tostring/restart', admin)).status, 200);
    assert.equal((await call(first, 'POST', '/api/instances/constructor/tostring/hibernate', own)).status, 200);
    assert.equal((await call(first, 'GET', '/echo', {}, undefined, 'tostring.constructor.localhost')).status, 200, 'woken');
    // A tenant named prototype creates its own instance where the service grants it.
    const proto = bearer(await tenantToken(first, admin, 'prototype'));
    const created = await call(first, 'POST', '/api/instances/constructor/prototype', proto);
    assert.equal(created.status, 201, created.body);
    assert.equal((JSON.parse(created.body) as { weight: number }).weight, 50, 'min(weight, tenants.maxWeight)');
    // Metrics and logs name it like any other service.
    const metrics = await call(first, 'GET', '/api/metrics', admin);
    assert.match(metrics.body, /service="constructor"/);
    assert.equal((await call(first, 'GET', '/api/logs?service=constructor&id=tostring', own)).status, 200);
    // autoCreate in a service named prototype.
    const auto = await call(first, 'GET', '/echo', {}, undefined, 'valueof.prototype.localhost');
    assert.equal(auto.status, 200, auto.body);
    assert.equal(auto.headers['x-instance'], 'prototype:valueof');

    // Unknown names are coded 404s, and nothing is created.
    const unknownService = await call(first, 'POST', '/api/instances/hasownproperty/x', admin);
    assert.equal(unknownService.status, 404);
    assert.equal(codeOf(unknownService), 'TNM_ERR_UNKNOWN_SERVICE');
    const unknownInstance = await call(first, 'GET', '/api/instances/constructor/valueof', admin);
    assert.equal(unknownInstance.status, 404);
    assert.equal(codeOf(unknownInstance), 'TNM_ERR_UNKNOWN_INSTANCE');
    const badName = await call(first, 'GET', '/api/instances/constructor/toString', admin);
    assert.equal(badName.status, 400);
    assert.equal(codeOf(badName), 'TNM_ERR_BAD_REQUEST');
    assertNoGhost(first, 'the end-to-end run');
  } finally {
    await first.close();
  }

  // Restored from the state store through the same lookups.
  const second = await createTestKernel({ plugins: defaultPlugins, config });
  try {
    assert.deepEqual(
      second.instances
        .list()
        .map((i) => i.key)
        .sort(),
      ['constructor:constructor', 'constructor:prototype', 'constructor:tostring', 'prototype:valueof'],
    );
    assertNoGhost(second, 'after the restart');
    await waitFor(() => second.instances.get('constructor', 'tostring')?.state === 'running', 'constructor:tostring running again', 30_000);
    assert.equal(second.instances.get('constructor', 'tostring')!.weight, 40, 'its weight persisted');
    const again = await call(second, 'GET', '/echo', {}, undefined, 'tostring.constructor.localhost');
    assert.equal(again.status, 200);
  } finally {
    await second.close();
  }
});

test('a stored instance of a service named constructor that left the config is skipped at boot, not started with Object as its config', { timeout: 120_000 }, async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-names-gone-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const first = await createTestKernel({
    plugins: defaultPlugins,
    config: { settings: { dataDir, ...QUIET }, services: { constructor: echoService() }, instances: { constructor: ['bob'] } },
  });
  await waitFor(() => first.instances.get('constructor', 'bob')?.state === 'running', 'constructor:bob running', 30_000);
  await first.close();

  const second = await createTestKernel({ plugins: defaultPlugins, config: { settings: { dataDir, ...QUIET }, services: { web: echoService() } } });
  try {
    assert.equal(second.instances.size, 0, 'the stored constructor:bob is skipped');
    const answer = await call(second, 'GET', '/echo', {}, undefined, 'bob.constructor.localhost');
    assert.equal(answer.status, 404);
    assert.equal(codeOf(answer), 'TNM_ERR_UNKNOWN_SERVICE');
    await assertServing(second, 'the request');
  } finally {
    await second.close();
  }
});
