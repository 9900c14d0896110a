// The instances API (plugins/instances-api): list, read, spawn, remove, restart, hibernate, weight and a live
// health check, each with admin and tenant tokens, against real processes.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { ConfigInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import type { ApiInstanceView as InstanceView } from '../../plugins/instances-api/view.ts';
import { ADMIN, staticAuth, tenant } from '../fixtures/static-auth.ts';
import { alive, apiCall, echoService, type Reply, request, servePlugins, waitFor } from '../helpers.ts';

const plugins = [...servePlugins, staticAuth, instancesApi];

/** Health checks far apart, so only the checks a test asks for run. */
const QUIET = { healthInterval: '1h' } as const;

async function apiKernel(t: TestContext, config: ConfigInput): Promise<TestKernel> {
  const kernel = await createTestKernel({ plugins, config: { ...config, settings: { ...QUIET, ...config.settings } } });
  t.after(() => kernel.close());
  return kernel;
}


type Json = Record<string, unknown> & { error?: { code: string; message: string } };
const parse = (reply: Reply): Json => JSON.parse(reply.body) as Json;
const view = (reply: Reply): InstanceView => JSON.parse(reply.body) as InstanceView;

async function running(kernel: TestKernel, ...keys: string[]): Promise<void> {
  await waitFor(() => keys.every((key) => kernel.instances.getByKey(key)?.state === 'running'), `${keys.join(', ')} running`, 20_000);
}

const ENDPOINTS: Array<[string, string, unknown?]> = [
  ['GET', '/api/instances'],
  ['GET', '/api/instances/echo/alice'],
  ['POST', '/api/instances/echo/alice'],
  ['DELETE', '/api/instances/echo/alice'],
  ['POST', '/api/instances/echo/alice/restart'],
  ['POST', '/api/instances/echo/alice/hibernate'],
  ['PUT', '/api/instances/echo/alice/weight', { weight: 5 }],
  ['GET', '/api/instances/echo/alice/health'],
  ['POST', '/api/deploy', { service: 'echo', version: 'v2' }],
  ['POST', '/api/route', { service: 'echo', from: 'alice', to: 'v2' }],
];

test('every endpoint answers 401 without a token or with an invalid one, and changes nothing', { timeout: 60_000 }, async (t) => {
  const kernel = await apiKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice'] } });
  await running(kernel, 'echo:alice');
  const pid = kernel.instances.get('echo', 'alice')!.handle!.pid;
  for (const [index, [method, url, body]] of ENDPOINTS.entries()) {
    // Each endpoint from its own loopback address: the per-address lock-out stays out of the way.
    const from = `127.0.0.${20 + index}`;
    for (const headers of [{}, { authorization: 'Static nobody' }] as Array<Record<string, string>>) {
      const reply = await apiCall(kernel, method, url, headers, body, from);
      assert.equal(reply.status, 401, `${method} ${url} with ${JSON.stringify(headers)}`);
      assert.equal(parse(reply).error?.code, 'TNM_ERR_UNAUTHORIZED');
    }
  }
  const alice = kernel.instances.get('echo', 'alice')!;
  assert.equal(alice.state, 'running');
  assert.equal(alice.handle?.pid, pid);
  assert.equal(kernel.instances.size, 1);
});

test('list: sorted by service then id, filtered by service and state, tenants see only their own', { timeout: 90_000 }, async (t) => {
  const kernel = await apiKernel(t, {
    services: { web: echoService(), echo: echoService() },
    instances: { web: ['alice'], echo: ['bob', 'alice'] },
  });
  await running(kernel, 'web:alice', 'echo:bob', 'echo:alice');

  const all = parse(await apiCall(kernel, 'GET', '/api/instances', ADMIN)).instances as InstanceView[];
  assert.deepEqual(all.map((i) => i.key), ['echo:alice', 'echo:bob', 'web:alice']);
  for (const instance of all) {
    assert.equal(instance.state, 'running');
    assert.ok(instance.pid! > 0);
    assert.equal(typeof instance.uptimeSeconds, 'number');
    assert.equal(typeof instance.idleSeconds, 'number');
    assert.ok(instance.memoryBytes! > 0, 'resident memory of a live process');
    assert.equal(typeof instance.cpuSeconds, 'number');
    assert.equal(instance.weight, 100);
  }

  const echo = parse(await apiCall(kernel, 'GET', '/api/instances?service=echo', ADMIN)).instances as InstanceView[];
  assert.deepEqual(echo.map((i) => i.key), ['echo:alice', 'echo:bob']);

  assert.equal((await apiCall(kernel, 'POST', '/api/instances/echo/bob/hibernate', ADMIN)).status, 200);
  const sleeping = parse(await apiCall(kernel, 'GET', '/api/instances?state=hibernated', ADMIN)).instances as InstanceView[];
  assert.deepEqual(sleeping.map((i) => i.key), ['echo:bob']);
  assert.equal(sleeping[0]!.uptimeSeconds, null);
  assert.equal(sleeping[0]!.memoryBytes, null);
  assert.equal(sleeping[0]!.cpuSeconds, null);
  assert.equal(sleeping[0]!.pid, null);
  const awake = parse(await apiCall(kernel, 'GET', '/api/instances?service=echo&state=running', ADMIN)).instances as InstanceView[];
  assert.deepEqual(awake.map((i) => i.key), ['echo:alice']);

  const mine = parse(await apiCall(kernel, 'GET', '/api/instances', tenant('alice'))).instances as InstanceView[];
  assert.deepEqual(mine.map((i) => i.key), ['echo:alice', 'web:alice']);
  const bobs = parse(await apiCall(kernel, 'GET', '/api/instances?state=running', tenant('bob'))).instances as InstanceView[];
  assert.deepEqual(bobs, [], "bob's only instance is hibernated");
  assert.deepEqual(parse(await apiCall(kernel, 'GET', '/api/instances', tenant('carol'))).instances, []);

  const badState = await apiCall(kernel, 'GET', '/api/instances?state=asleep', ADMIN);
  assert.equal(badState.status, 400);
  assert.match(parse(badState).error!.message, /query\.state/);
  const badService = await apiCall(kernel, 'GET', '/api/instances?service=Not_A_Label', ADMIN);
  assert.equal(badService.status, 400);
  assert.match(parse(badService).error!.message, /query\.service/);
});

test("get one: admin and its own tenant see it; another tenant's looks exactly like a missing one", { timeout: 60_000 }, async (t) => {
  const kernel = await apiKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice'] } });
  await running(kernel, 'echo:alice');
  const admin = await apiCall(kernel, 'GET', '/api/instances/echo/alice', ADMIN);
  assert.equal(admin.status, 200);
  assert.equal(view(admin).key, 'echo:alice');
  assert.equal(view(admin).pid, kernel.instances.get('echo', 'alice')!.handle!.pid);
  const own = await apiCall(kernel, 'GET', '/api/instances/echo/alice', tenant('alice'));
  assert.equal(own.status, 200);
  assert.equal(view(own).key, 'echo:alice');

  const other = await apiCall(kernel, 'GET', '/api/instances/echo/alice', tenant('bob'));
  const missing = await apiCall(kernel, 'GET', '/api/instances/echo/bob', tenant('bob'));
  const missingAdmin = await apiCall(kernel, 'GET', '/api/instances/echo/zed', ADMIN);
  for (const reply of [other, missing, missingAdmin]) {
    assert.equal(reply.status, 404);
    assert.equal(parse(reply).error?.code, 'TNM_ERR_UNKNOWN_INSTANCE');
  }
  assert.equal(parse(other).error!.message, "unknown instance 'echo:alice'");
  assert.equal(parse(missingAdmin).error!.message, "unknown instance 'echo:zed'");
  for (const bad of ['/api/instances/echo/Alice', '/api/instances/echo/-x', `/api/instances/echo/${'a'.repeat(64)}`, '/api/instances/e_cho/alice']) {
    const reply = await apiCall(kernel, 'GET', bad, ADMIN);
    assert.equal(reply.status, 400, bad);
    assert.equal(parse(reply).error?.code, 'TNM_ERR_BAD_REQUEST');
  }
});

test('spawn: 201 when created, 200 when it existed; tenants spawn only their own id, and create it only with the grant; a failed start is 503', { timeout: 90_000 }, async (t) => {
  const kernel = await apiKernel(t, {
    services: {
      echo: echoService({ tenants: { create: true } }),
      closed: echoService(),
      crash: { command: 'node', args: ['-e', "console.error('crash: no config'); process.exit(3)"], restart: 'never' },
    },
  });
  const made = await apiCall(kernel, 'POST', '/api/instances/echo/alice', ADMIN);
  assert.equal(made.status, 201);
  assert.equal(view(made).state, 'running', 'answered once it is running');
  assert.ok(alive(view(made).pid!));
  const reached = await request(kernel, 'alice.echo.localhost', '/echo');
  assert.equal(reached.status, 200);
  assert.equal(JSON.parse(reached.body).instance, 'echo:alice');

  const again = await apiCall(kernel, 'POST', '/api/instances/echo/alice', ADMIN);
  assert.equal(again.status, 200);
  assert.equal(view(again).pid, view(made).pid, 'the running process is kept');

  const own = await apiCall(kernel, 'POST', '/api/instances/echo/bob', tenant('bob'));
  assert.equal(own.status, 201);
  assert.equal(view(own).key, 'echo:bob');
  assert.equal(view(own).weight, 0, 'a tenant-created instance stays out of echo.localhost traffic (tenants.maxWeight 0)');
  assert.equal((await apiCall(kernel, 'POST', '/api/instances/echo/bob', tenant('bob'))).status, 200);

  // Without tenants.create on the service, creating needs the admin token; starting an existing own one does not.
  const ungranted = await apiCall(kernel, 'POST', '/api/instances/closed/bob', tenant('bob'));
  assert.equal(ungranted.status, 403);
  assert.equal(parse(ungranted).error?.code, 'TNM_ERR_FORBIDDEN');
  assert.equal(kernel.instances.get('closed', 'bob'), undefined, 'nothing was created');
  assert.ok(!kernel.store.listInstances().some((row) => row.service === 'closed'), 'nothing was persisted');
  assert.equal((await apiCall(kernel, 'POST', '/api/instances/closed/bob', ADMIN)).status, 201);
  await apiCall(kernel, 'POST', '/api/instances/closed/bob/hibernate', ADMIN);
  assert.equal((await apiCall(kernel, 'POST', '/api/instances/closed/bob', tenant('bob'))).status, 200, 'its own existing instance starts');

  const others = await apiCall(kernel, 'POST', '/api/instances/echo/carol', tenant('bob'));
  assert.equal(others.status, 404);
  assert.equal(parse(others).error?.code, 'TNM_ERR_UNKNOWN_INSTANCE');
  assert.equal(kernel.instances.get('echo', 'carol'), undefined, 'nothing was spawned');
  const existingOther = await apiCall(kernel, 'POST', '/api/instances/echo/alice', tenant('bob'));
  assert.equal(existingOther.status, 404);

  const unknown = await apiCall(kernel, 'POST', '/api/instances/nope/alice', ADMIN);
  assert.equal(unknown.status, 404);
  assert.equal(parse(unknown).error?.code, 'TNM_ERR_UNKNOWN_SERVICE');
  assert.equal((await apiCall(kernel, 'POST', '/api/instances/echo/Bad', ADMIN)).status, 400);

  const crashed = await apiCall(kernel, 'POST', '/api/instances/crash/alice', ADMIN);
  assert.equal(crashed.status, 503);
  const body = parse(crashed) as Json & { error: { lastError: string; logs: string[] }; instance: InstanceView };
  assert.equal(body.error.code, 'TNM_ERR_SPAWN_FAILED');
  assert.match(body.error.message, /exited with code 3/);
  assert.match(body.error.lastError, /exited with code 3/);
  assert.ok(body.error.logs.some((line) => line.includes('crash: no config')), body.error.logs.join('\n'));
  assert.equal(body.instance.key, 'crash:alice');
  assert.equal(body.instance.state, 'failed');
});

test('remove stops the process and forgets the instance; tenants remove only their own', { timeout: 60_000 }, async (t) => {
  const kernel = await apiKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice', 'bob'] } });
  await running(kernel, 'echo:alice', 'echo:bob');
  const alicePid = kernel.instances.get('echo', 'alice')!.handle!.pid!;
  const bobPid = kernel.instances.get('echo', 'bob')!.handle!.pid!;

  const denied = await apiCall(kernel, 'DELETE', '/api/instances/echo/bob', tenant('alice'));
  assert.equal(denied.status, 404);
  assert.equal(kernel.instances.get('echo', 'bob')?.state, 'running');

  const removed = await apiCall(kernel, 'DELETE', '/api/instances/echo/alice', tenant('alice'));
  assert.equal(removed.status, 200);
  assert.deepEqual(parse(removed), { removed: 'echo:alice' });
  assert.equal(kernel.instances.get('echo', 'alice'), undefined);
  await waitFor(() => !alive(alicePid), 'the removed process to be gone');
  assert.equal((await apiCall(kernel, 'GET', '/api/instances/echo/alice', ADMIN)).status, 404);
  assert.equal((await request(kernel, 'alice.echo.localhost', '/')).status, 404);
  assert.ok(!kernel.store.listInstances().some((row) => row.id === 'alice'), 'gone from the state store too');

  assert.deepEqual(parse(await apiCall(kernel, 'DELETE', '/api/instances/echo/bob', ADMIN)), { removed: 'echo:bob' });
  await waitFor(() => !alive(bobPid), 'bob to be gone');
  assert.equal((await apiCall(kernel, 'DELETE', '/api/instances/echo/bob', ADMIN)).status, 404);
});

test('restart gives a new process; hibernate stops it and keeps it listed; its next request wakes it', { timeout: 90_000 }, async (t) => {
  const kernel = await apiKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice', 'bob'] } });
  await running(kernel, 'echo:alice', 'echo:bob');
  const before = kernel.instances.get('echo', 'alice')!.handle!.pid!;

  const restarted = await apiCall(kernel, 'POST', '/api/instances/echo/alice/restart', tenant('alice'));
  assert.equal(restarted.status, 200);
  assert.equal(view(restarted).state, 'running');
  assert.notEqual(view(restarted).pid, before);
  assert.ok(alive(view(restarted).pid!));
  await waitFor(() => !alive(before), 'the old process to be gone');
  assert.equal((await apiCall(kernel, 'POST', '/api/instances/echo/bob/restart', tenant('alice'))).status, 404);

  const pid = view(restarted).pid!;
  const hibernated = await apiCall(kernel, 'POST', '/api/instances/echo/alice/hibernate', tenant('alice'));
  assert.equal(hibernated.status, 200);
  assert.equal(view(hibernated).state, 'hibernated');
  assert.equal(view(hibernated).pid, null);
  await waitFor(() => !alive(pid), 'the hibernated process to be gone');
  assert.equal((await apiCall(kernel, 'POST', '/api/instances/echo/alice/hibernate', ADMIN)).status, 200, 'already asleep is fine');
  assert.equal((await apiCall(kernel, 'POST', '/api/instances/echo/bob/hibernate', tenant('alice'))).status, 404);

  const woken = await request(kernel, 'alice.echo.localhost', '/echo');
  assert.equal(woken.status, 200);
  assert.equal(view(await apiCall(kernel, 'GET', '/api/instances/echo/alice', ADMIN)).state, 'running');

  // Restart also brings a hibernated instance back.
  await apiCall(kernel, 'POST', '/api/instances/echo/bob/hibernate', ADMIN);
  const revived = await apiCall(kernel, 'POST', '/api/instances/echo/bob/restart', ADMIN);
  assert.equal(revived.status, 200);
  assert.equal(view(revived).state, 'running');
});

test('weight is validated, scoped and persisted across a restart of Tenement on the same data dir', { timeout: 90_000 }, async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-weight-'));
  const config: ConfigInput = {
    settings: { dataDir, ...QUIET },
    services: { echo: echoService({ tenants: { maxWeight: 10 } }), plain: echoService() },
    instances: { echo: ['alice', 'bob'], plain: ['alice'] },
  };

  const first = await createTestKernel({ plugins, config });
  try {
    await running(first, 'echo:alice', 'echo:bob', 'plain:alice');
    const set = await apiCall(first, 'PUT', '/api/instances/echo/alice/weight', tenant('alice'), { weight: 7 });
    assert.equal(set.status, 200);
    assert.equal(view(set).weight, 7);
    assert.equal((await apiCall(first, 'PUT', '/api/instances/echo/bob/weight', ADMIN, { weight: 0 })).status, 200);
    assert.equal((await apiCall(first, 'PUT', '/api/instances/echo/bob/weight', tenant('alice'), { weight: 50 })).status, 404);
    // A tenant sets its own weight only up to the service's tenants.maxWeight, and not at all without it.
    const above = await apiCall(first, 'PUT', '/api/instances/echo/alice/weight', tenant('alice'), { weight: 11 });
    assert.equal(above.status, 403);
    assert.equal(parse(above).error?.code, 'TNM_ERR_FORBIDDEN');
    const ungranted = await apiCall(first, 'PUT', '/api/instances/plain/alice/weight', tenant('alice'), { weight: 0 });
    assert.equal(ungranted.status, 403);
    assert.equal(first.instances.get('plain', 'alice')!.weight, 100);
    for (const bad of [{ weight: 101 }, { weight: -1 }, { weight: 2.5 }, { weight: '5' }, {}, { weight: 5, extra: 1 }]) {
      const reply = await apiCall(first, 'PUT', '/api/instances/echo/alice/weight', ADMIN, bad);
      assert.equal(reply.status, 400, JSON.stringify(bad));
      assert.match(parse(reply).error!.message, /body/);
    }
    assert.equal(first.instances.get('echo', 'alice')!.weight, 7, 'rejected changes changed nothing');
  } finally {
    await first.close();
  }

  const second = await createTestKernel({ plugins, config });
  // One hook, closing before removing: the kernel writes into the folder (after-hooks stop at the first that throws).
  t.after(() => second.close().finally(() => rmSync(dataDir, { recursive: true, force: true })));
  await running(second, 'echo:alice', 'echo:bob');
  assert.equal(view(await apiCall(second, 'GET', '/api/instances/echo/alice', ADMIN)).weight, 7);
  assert.equal(view(await apiCall(second, 'GET', '/api/instances/echo/bob', ADMIN)).weight, 0);
});

test('the live health check reports without side effects: no failure count, no health change, no restart', { timeout: 90_000 }, async (t) => {
  const kernel = await apiKernel(t, {
    settings: { unhealthyThreshold: 1 },
    services: { echo: echoService(), plain: echoService({ health: undefined }) },
    instances: { echo: ['alice', 'bob'], plain: ['alice'] },
  });
  await running(kernel, 'echo:alice', 'echo:bob', 'plain:alice');
  const alice = kernel.instances.get('echo', 'alice')!;
  const pid = alice.handle!.pid;

  const good = parse(await apiCall(kernel, 'GET', '/api/instances/echo/alice/health', tenant('alice')));
  assert.equal(good.ok, true);
  assert.equal(good.detail, 'HTTP 200');
  assert.equal(typeof good.latencyMs, 'number');
  assert.equal(good.state, 'running');
  assert.equal(good.health, 'healthy');
  const tcp = parse(await apiCall(kernel, 'GET', '/api/instances/plain/alice/health', ADMIN));
  assert.equal(tcp.ok, true, 'a service without a health path is checked by connecting');

  // The fixture's /health answers 500 while this file exists.
  writeFileSync(path.join(kernel.instanceDir('echo', 'alice'), 'unhealthy'), '');
  for (let i = 0; i < 5; i++) {
    const bad = parse(await apiCall(kernel, 'GET', '/api/instances/echo/alice/health', ADMIN));
    assert.equal(bad.ok, false);
    assert.equal(bad.detail, 'HTTP 500');
    assert.equal(bad.health, 'healthy', 'the recorded health is the monitor’s, not this check’s');
  }
  assert.equal(alice.consecutiveHealthFailures, 0);
  assert.equal(alice.health, 'healthy');
  assert.equal(alice.restarts, 0);
  assert.equal(alice.state, 'running');
  assert.equal(alice.handle?.pid, pid, 'five failed checks over a threshold of one restarted nothing');

  assert.equal((await apiCall(kernel, 'GET', '/api/instances/echo/bob/health', tenant('alice'))).status, 404);
  await apiCall(kernel, 'POST', '/api/instances/echo/bob/hibernate', ADMIN);
  const asleep = parse(await apiCall(kernel, 'GET', '/api/instances/echo/bob/health', tenant('bob')));
  assert.equal(asleep.ok, false);
  assert.equal(asleep.detail, 'not running');
  assert.equal(asleep.state, 'hibernated');
  assert.equal(kernel.instances.get('echo', 'bob')!.state, 'hibernated', 'checking did not wake it');
});

test('mutating calls are audited with their target and instance; tenants read only their own entries', { timeout: 90_000 }, async (t) => {
  const kernel = await apiKernel(t, { services: { echo: echoService({ tenants: { create: true } }) } });
  await apiCall(kernel, 'POST', '/api/instances/echo/alice', tenant('alice'));
  await apiCall(kernel, 'PUT', '/api/instances/echo/alice/weight', ADMIN, { weight: 30 });
  await apiCall(kernel, 'POST', '/api/instances/echo/alice/restart', ADMIN);
  await apiCall(kernel, 'POST', '/api/instances/echo/alice/hibernate', ADMIN);
  await apiCall(kernel, 'POST', '/api/instances/echo/bob', tenant('alice'));
  await apiCall(kernel, 'DELETE', '/api/instances/echo/alice', tenant('alice'));
  await apiCall(kernel, 'GET', '/api/instances/echo/alice', ADMIN);

  type Entry = { actor: string; action: string; target: string; instanceId: string; status: number; detail: string | null };
  const entries = (parse(await apiCall(kernel, 'GET', '/api/audit', ADMIN)).entries as Entry[]).reverse();
  assert.deepEqual(
    entries.map((e) => [e.actor, e.action, e.target, e.instanceId, e.status]),
    [
      ['static:alice', 'POST /api/instances/:service/:id', 'echo:alice', 'alice', 201],
      ['static:admin', 'PUT /api/instances/:service/:id/weight', 'echo:alice', 'alice', 200],
      ['static:admin', 'POST /api/instances/:service/:id/restart', 'echo:alice', 'alice', 200],
      ['static:admin', 'POST /api/instances/:service/:id/hibernate', 'echo:alice', 'alice', 200],
      ['static:alice', 'POST /api/instances/:service/:id', 'echo:bob', 'bob', 404],
      ['static:alice', 'DELETE /api/instances/:service/:id', 'echo:alice', 'alice', 200],
    ],
    'reads are not audited',
  );
  assert.equal(entries[1]!.detail, 'weight 0 -> 30', 'alice created it at weight 0 (tenants.maxWeight)');
  const mine = parse(await apiCall(kernel, 'GET', '/api/audit', tenant('alice'))).entries as Entry[];
  assert.ok(mine.length === 5 && mine.every((e) => e.instanceId === 'alice'));
});

test('tenants get 403 on deploy and route, and nothing changes', { timeout: 60_000 }, async (t) => {
  const kernel = await apiKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice'] } });
  await running(kernel, 'echo:alice');
  const deploy = await apiCall(kernel, 'POST', '/api/deploy', tenant('alice'), { service: 'echo', version: 'v2' });
  assert.equal(deploy.status, 403);
  assert.equal(parse(deploy).error?.code, 'TNM_ERR_FORBIDDEN');
  const route = await apiCall(kernel, 'POST', '/api/route', tenant('alice'), { service: 'echo', from: 'alice', to: 'alice' });
  assert.equal(route.status, 403);
  assert.equal(parse(route).error?.code, 'TNM_ERR_FORBIDDEN');
  assert.deepEqual([...kernel.instances.list()].map((i) => [i.key, i.weight]), [['echo:alice', 100]]);

  const doc = parse(await apiCall(kernel, 'GET', '/api/openapi.json', ADMIN)) as { paths: Record<string, Record<string, unknown>> };
  for (const p of ['/api/instances', '/api/instances/{service}/{id}', '/api/instances/{service}/{id}/weight', '/api/deploy', '/api/route']) {
    assert.ok(doc.paths[p], `${p} is documented`);
  }
});
