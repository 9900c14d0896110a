// The dashboard's event stream and tenant scoping (plugins/dashboard, docs/dashboard.md) over real HTTP against a
// kernel with real instances and real bearer tokens: what a tenant's session sees in the API, the stream and the
// history, the events an instance's changes send, and the bound on open streams.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiCall, echoService, waitFor } from '../helpers.ts';
import { adminToken, bearer, dashKernel, openEvents, parse, running, signIn, tenantToken, type Json } from './dashboard-api-fixture.ts';

test('a tenant session sees only its own instances, in the API, the event stream and the history', { timeout: 90_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice', 'bob'] } });
  await running(kernel, 'echo:alice', 'echo:bob');
  const alice = await signIn(kernel, (await tenantToken(kernel, 'alice')).token);
  assert.deepEqual(alice.body.identity, { kind: 'tenant', tenant: 'alice', name: 'alice-token' });

  const list = parse(await apiCall(kernel, 'GET', '/api/instances', { cookie: alice.cookie }));
  assert.deepEqual(list.instances.map((i: Json) => i.key), ['echo:alice']);
  const other = await apiCall(kernel, 'GET', '/api/instances/echo/bob/history', { cookie: alice.cookie });
  assert.equal(other.status, 404);
  assert.equal(parse(other).error.code, 'TNM_ERR_UNKNOWN_INSTANCE');
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', { cookie: alice.cookie })).status, 403);
  const bobChange = await apiCall(kernel, 'POST', '/api/instances/echo/bob/restart', { cookie: alice.cookie, 'x-csrf-token': alice.csrf });
  assert.equal(bobChange.status, 404);

  const stream = await openEvents(kernel, { cookie: alice.cookie });
  t.after(() => stream.close());
  assert.equal(stream.status, 200);
  const snapshot = await stream.next((e) => e.event === 'snapshot', 'snapshot');
  assert.deepEqual(snapshot.data.instances.map((i: Json) => i.key), ['echo:alice']);
  // bob changes, then alice: alice's stream gets alice's change and nothing of bob's.
  const admin = bearer(adminToken(kernel));
  assert.equal((await apiCall(kernel, 'PUT', '/api/instances/echo/bob/weight', admin, { weight: 9 })).status, 200);
  assert.equal((await apiCall(kernel, 'DELETE', '/api/instances/echo/bob', admin)).status, 200);
  assert.equal((await apiCall(kernel, 'PUT', '/api/instances/echo/alice/weight', admin, { weight: 4 })).status, 200);
  await stream.next((e) => e.event === 'instance' && e.data.key === 'echo:alice' && e.data.weight === 4, "alice's weight change");
  assert.ok(
    stream.events.every((e) => JSON.stringify(e.data).includes('bob') === false),
    `no event about bob: ${JSON.stringify(stream.events.map((e) => e.event))}`,
  );
});

test('the event stream sends instance and removed events when an instance is stopped through the API', { timeout: 90_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice', 'bob'] } });
  await running(kernel, 'echo:alice', 'echo:bob');
  const signed = await signIn(kernel, adminToken(kernel));
  const stream = await openEvents(kernel, { cookie: signed.cookie });
  t.after(() => stream.close());
  assert.equal(stream.status, 200);
  const snapshot = await stream.next((e) => e.event === 'snapshot', 'snapshot');
  assert.deepEqual(snapshot.data.instances.map((i: Json) => i.key), ['echo:alice', 'echo:bob']);
  const item = snapshot.data.instances[0] as Json;
  // The same shape as an item of GET /api/instances.
  const listed = parse(await apiCall(kernel, 'GET', '/api/instances', bearer(adminToken(kernel)))).instances[0] as Json;
  assert.deepEqual(Object.keys(item).sort(), Object.keys(listed).sort());

  const hibernated = await apiCall(kernel, 'POST', '/api/instances/echo/bob/hibernate', { cookie: signed.cookie, 'x-csrf-token': signed.csrf });
  assert.equal(hibernated.status, 200, hibernated.body);
  await stream.next((e) => e.event === 'instance' && e.data.key === 'echo:bob' && e.data.state === 'hibernated', 'bob hibernated');
  assert.equal((await apiCall(kernel, 'DELETE', '/api/instances/echo/alice', bearer(adminToken(kernel)))).status, 200);
  await stream.next((e) => e.event === 'removed' && e.data.key === 'echo:alice', 'alice removed');
  assert.deepEqual(stream.events.find((e) => e.event === 'removed')!.data, { key: 'echo:alice', service: 'echo', id: 'alice' });
});

test('event streams are bounded: past maxStreams a coded 429, and a closed stream frees its place', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() } }, { maxStreams: 2 });
  const headers = bearer(adminToken(kernel));
  const first = await openEvents(kernel, headers);
  const second = await openEvents(kernel, headers);
  t.after(() => {
    first.close();
    second.close();
  });
  assert.equal(first.status, 200);
  assert.equal(second.status, 200);
  const third = await apiCall(kernel, 'GET', '/api/events', headers);
  assert.equal(third.status, 429);
  assert.equal(parse(third).error.code, 'TNM_ERR_RATE_LIMITED');
  assert.ok(Number(third.headers['retry-after']) > 0);
  first.close();
  // Freed when the client leaves, not at the next keep-alive write 15 s later (the server keeps half-open
  // connections, so the client's leaving shows only as the end of what it sends).
  await waitFor(async () => {
    const again = await openEvents(kernel, headers);
    again.close();
    return again.status === 200;
  }, 'a place freed', 5_000);
});

test('a tenant stream gets stats of its own running instances only', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice', 'bob'] } });
  await running(kernel, 'echo:alice', 'echo:bob');
  const alice = await signIn(kernel, (await tenantToken(kernel, 'alice')).token);
  const stream = await openEvents(kernel, { cookie: alice.cookie });
  t.after(() => stream.close());
  const stats = await stream.next((e) => e.event === 'stats', 'a stats event (every 10 s)', 40_000);
  assert.deepEqual(stats.data.instances.map((i: Json) => i.key), ['echo:alice']);
  const own = stats.data.instances[0] as Json;
  assert.ok((own.memoryBytes as number) > 1_000_000);
  assert.equal(typeof own.rps, 'number');
});
