// The HAProxy edge (plugins/edge-haproxy, docs/edge.md), waking and idling: a hibernated instance is woken through
// Tenement's built-in proxy (the activator) and then served directly, haproxy's counters keep a busy instance awake
// until it is idle, and a full wake queue answers the built-in 503.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { echoService, recordEvents, request, sleep, waitFor } from '../helpers.ts';
import { haproxyMissing, hibernatedBehindActivator, startEdge, untilDirect } from './edge-haproxy-fixture.ts';

const skip = haproxyMissing();

describe('HAProxy edge', { skip, timeout: 180_000 }, () => {
  test('a hibernated instance is woken through the activator: a herd gives one spawn, then traffic goes direct', async (t) => {
    const e = await startEdge(t, { echo: echoService({ idleTimeout: 0 }) });
    const events = recordEvents(e.kernel);
    await hibernatedBehindActivator(e, 'echo', 'alice');
    const spawnsBefore = events.filter((ev) => ev.instance === 'echo:alice' && ev.type === 'spawned').length;
    const herd = await Promise.all(Array.from({ length: 16 }, () => request(e.edge, 'alice.echo.localhost', '/pid')));
    for (const reply of herd) assert.equal(reply.status, 200, reply.body);
    assert.equal(new Set(herd.map((r) => r.body)).size, 1, 'every waiting request answered by the one woken process');
    assert.equal(events.filter((ev) => ev.instance === 'echo:alice' && ev.type === 'spawned').length - spawnsBefore, 1, 'one spawn for the herd');
    assert.ok(e.viaActivator.filter((k) => k === 'echo:alice').length >= 1, 'the herd went through the activator');

    await untilDirect(e, 'echo', 'alice');
    const viaBefore = e.viaActivator.length;
    const totalOf = async (): Promise<number> => (await e.api.serverStats((b) => b === 'i.echo.alice')).reduce((n, s) => n + s.total, 0);
    const sessionsBefore = await totalOf();
    for (let i = 0; i < 5; i++) assert.equal((await request(e.edge, 'alice.echo.localhost', '/pid')).status, 200);
    assert.equal(e.viaActivator.length, viaBefore, 'after the wake, not through the activator');
    assert.ok((await totalOf()) - sessionsBefore >= 5, "haproxy's counters for alice's direct server grew");
  });

  test('an instance reached only through haproxy stays up while it has traffic and hibernates once idle', async (t) => {
    const e = await startEdge(t, { echo: echoService({ idleTimeout: '2s' }) });
    const alice = await e.kernel.spawnInstance('echo', 'alice');
    await untilDirect(e, 'echo', 'alice');
    const viaBefore = e.viaActivator.length;
    const until = Date.now() + 5_000;
    while (Date.now() < until) {
      assert.equal((await request(e.edge, 'alice.echo.localhost', '/pid')).status, 200);
      assert.equal(alice.state, 'running', 'not hibernated while haproxy carries its traffic');
      await sleep(100);
    }
    assert.equal(e.viaActivator.length, viaBefore, 'the built-in proxy saw none of it: only the counters kept it awake');
    await waitFor(() => alice.state === 'hibernated', 'alice to hibernate once idle', 30_000);
  });
});

test('through haproxy, a wake queue that is full answers the built-in 503 with Retry-After', { skip, timeout: 120_000 }, async (t) => {
  const e = await startEdge(t, { echo: echoService({ idleTimeout: 0, wakeQueue: 2 }) });
  await hibernatedBehindActivator(e, 'echo', 'alice');
  const replies = await Promise.all(Array.from({ length: 12 }, () => request(e.edge, 'alice.echo.localhost', '/pid')));
  const full = replies.filter((r) => r.status === 503);
  assert.ok(replies.some((r) => r.status === 200), 'the queued requests are answered');
  assert.ok(full.length > 0, `some requests found the queue full: ${replies.map((r) => r.status).join(',')}`);
  for (const reply of full) {
    assert.equal((JSON.parse(reply.body) as { error: { code: string } }).error.code, 'TNM_ERR_WAKE_QUEUE_FULL');
    assert.ok(Number(reply.headers['retry-after']) >= 1);
  }
});
