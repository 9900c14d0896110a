// End to end host routing: which Host reaches which instance, the management surface, and the weighted
// `{service}.{domain}` spread (weights, weight 0, dead and failed instances), on real processes. Each test runs
// on both edges (test/edges.ts): the built-in proxy, and HAProxy programmed by Tenement (docs/edge.md).
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import type { Instance } from '../../core/instance.ts';
import type { TestKernel } from '../../core/test-kernel.ts';
import { EDGES, edgeKernel, edgeSkip } from '../edges.ts';
import { alive, echoService, request, waitFor, type Reply } from '../helpers.ts';
import { manyRequests, showTally, tally } from '../spread.ts';

const TIMEOUT = 120_000;

async function running(kernel: TestKernel, service: string, id: string): Promise<Instance> {
  const instance = await kernel.spawnInstance(service, id);
  assert.equal(instance.state, 'running', `${instance.key} did not start: ${instance.lastError}`);
  return instance;
}

for (const edge of EDGES) {
  test(`host matching is case-insensitive and ignores the port and a trailing dot (${edge} edge)`, { timeout: TIMEOUT, skip: edgeSkip(edge) }, async (t) => {
    const { kernel, url, settled, viaBuiltin } = await edgeKernel(t, edge, { echo: echoService() });
    await running(kernel, 'echo', 'alice');
    await running(kernel, 'echo', 'bob');
    await settled();
    const builtinBefore = viaBuiltin();
    for (const host of ['alice.echo.localhost', 'ALICE.ECHO.LOCALHOST', 'Alice.Echo.LocalHost:8080', 'alice.echo.localhost:1', 'alice.echo.localhost.', 'alice.echo.localhost.:443']) {
      const reply = await request(url, host, '/echo');
      assert.equal(reply.status, 200, `${host}: ${reply.body}`);
      assert.equal(reply.headers['x-instance'], 'echo:alice', host);
    }
    const bob = await request(url, 'BOB.echo.localhost:9999', '/echo');
    assert.equal(bob.status, 200);
    assert.equal(bob.headers['x-instance'], 'echo:bob');
    assert.equal(kernel.instances.size, 2);
    // HAProxy matched every one of these hosts itself: none fell through to the activator.
    if (edge === 'haproxy') assert.equal(viaBuiltin() - builtinBefore, 0);
  });

  test(`every request on one kept-alive client connection is routed by its own Host (${edge} edge)`, { timeout: TIMEOUT, skip: edgeSkip(edge) }, async (t) => {
    const { kernel, url, settled } = await edgeKernel(t, edge, { echo: echoService() });
    await running(kernel, 'echo', 'alice');
    await running(kernel, 'echo', 'bob');
    await settled();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    t.after(() => agent.destroy());
    const base = new URL(url);
    const get = (host: string, path: string): Promise<Reply & { localPort: number }> =>
      new Promise((resolve, reject) => {
        const req = http.get({ host: base.hostname, port: base.port, path, headers: { host }, agent }, (res) => {
          const chunks: Buffer[] = [];
          const localPort = res.socket.localPort ?? 0;
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), localPort }));
          res.on('error', reject);
        });
        req.setTimeout(30_000, () => req.destroy(new Error(`${host}${path} timed out`)));
        req.on('error', reject);
      });
    const sequence = ['alice', 'bob', 'alice', 'management', 'bob', 'bob', 'alice', 'unknown', 'alice'];
    const ports = new Set<number>();
    for (const step of sequence) {
      if (step === 'management') {
        const reply = await get('localhost', '/health');
        assert.equal(reply.status, 200);
        assert.equal((JSON.parse(reply.body) as { status: string }).status, 'ok');
        continue;
      }
      const reply = await get(`${step}.echo.localhost`, '/echo');
      if (step === 'unknown') {
        assert.equal(reply.status, 404);
        assert.equal((JSON.parse(reply.body) as { error: { code: string } }).error.code, 'TNM_ERR_UNKNOWN_INSTANCE');
        continue;
      }
      assert.equal(reply.status, 200, `${step}: ${reply.body}`);
      assert.equal(reply.headers['x-instance'], `echo:${step}`, `request for ${step}`);
      ports.add(reply.localPort);
    }
    // The routed requests shared client connections rather than each getting a fresh one.
    assert.ok(ports.size < 6, `client connections used: ${ports.size}`);
  });

  test(`the bare domain and IP hosts go to management: /health answers JSON with status ok (${edge} edge)`, { timeout: TIMEOUT, skip: edgeSkip(edge) }, async (t) => {
    const { kernel, url, spawns, settled } = await edgeKernel(t, edge, { echo: echoService() });
    await running(kernel, 'echo', 'alice');
    await settled();
    for (const host of ['localhost', 'LOCALHOST', 'localhost:8080', 'LocalHost:1', '127.0.0.1', '127.0.0.1:8080', '[::1]', '[::1]:8080', '10.1.2.3']) {
      const reply = await request(url, host, '/health');
      assert.equal(reply.status, 200, `${host}: ${reply.body}`);
      assert.match(String(reply.headers['content-type']), /application\/json/, host);
      const body = JSON.parse(reply.body) as { status: string; instances: number };
      assert.equal(body.status, 'ok', host);
      assert.equal(body.instances, 1, host);
      assert.equal(reply.headers['x-instance'], undefined, `${host} reached an instance`);
    }
    // Management answers its own 404 for other paths, in the JSON error shape; no instance is involved.
    const missing = await request(url, 'localhost', '/echo');
    assert.equal(missing.status, 404);
    assert.equal((JSON.parse(missing.body) as { error: { code: string } }).error.code, 'TNM_ERR_NOT_FOUND');
    assert.deepEqual(Object.fromEntries(spawns), { 'echo:alice': 1 });
  });

  test(`instances named like the edge's own servers (activator, tenement) are routed like any other (${edge} edge)`, { timeout: TIMEOUT, skip: edgeSkip(edge) }, async (t) => {
    // HAProxy's config has servers of its own in the instances' backends: a tenant's name must never clash.
    const { kernel, url, settled } = await edgeKernel(t, edge, { echo: echoService() });
    await running(kernel, 'echo', 'activator');
    await running(kernel, 'echo', 'tenement');
    await settled();
    for (const id of ['activator', 'tenement']) {
      const reply = await request(url, `${id}.echo.localhost`, '/echo');
      assert.equal(reply.status, 200, `${id}: ${reply.body}`);
      assert.equal(reply.headers['x-instance'], `echo:${id}`);
    }
    const counts = tally(await manyRequests(url, 'echo.localhost', 20, { path: '/echo' }));
    assert.equal((counts.get('echo:activator') ?? 0) + (counts.get('echo:tenement') ?? 0), 20, showTally(counts));
  });

  test(`weighted {service}.localhost: an 80/20 split roughly follows the weights (${edge} edge)`, { timeout: TIMEOUT, skip: edgeSkip(edge) }, async (t) => {
    const { kernel, url, settled, viaBuiltin } = await edgeKernel(t, edge, { echo: echoService() });
    const heavy = await running(kernel, 'echo', 'heavy');
    const light = await running(kernel, 'echo', 'light');
    kernel.setWeight(heavy, 80);
    kernel.setWeight(light, 20);
    await settled();
    const builtinBefore = viaBuiltin();
    const counts = tally(await manyRequests(url, 'echo.localhost', 200, { path: '/echo' }));
    const heavyCount = counts.get('echo:heavy') ?? 0;
    const lightCount = counts.get('echo:light') ?? 0;
    assert.equal(heavyCount + lightCount, 200, `every request served by one of the two: ${showTally(counts)}`);
    // Expected 160/40; these bounds are many standard deviations wide.
    assert.ok(heavyCount >= 120 && heavyCount <= 190, `heavy got ${heavyCount}/200: ${showTally(counts)}`);
    assert.ok(lightCount >= 10, `light got ${lightCount}/200: ${showTally(counts)}`);
    // On HAProxy the split is HAProxy's own (weights programmed over its runtime API), not the activator's.
    if (edge === 'haproxy') assert.equal(viaBuiltin() - builtinBefore, 0);
    // Case and port do not matter for the weighted host either.
    const upper = await request(url, 'ECHO.localhost:8080', '/echo');
    assert.equal(upper.status, 200);
    assert.match(String(upper.headers['x-instance']), /^echo:(heavy|light)$/);
  });

  test(`weighted: an instance at weight 0 gets exactly nothing; all at 0 is a 503 (${edge} edge)`, { timeout: TIMEOUT, skip: edgeSkip(edge) }, async (t) => {
    const { kernel, url, spawns, settled } = await edgeKernel(t, edge, { echo: echoService() });
    const on = await running(kernel, 'echo', 'on');
    const off = await running(kernel, 'echo', 'off');
    kernel.setWeight(off, 0);
    await settled();
    const counts = tally(await manyRequests(url, 'echo.localhost', 100, { path: '/echo' }));
    assert.deepEqual(Object.fromEntries(counts), { 'echo:on': 100 });
    // Still directly reachable by its own host.
    const direct = await request(url, 'off.echo.localhost', '/echo');
    assert.equal(direct.status, 200);
    assert.equal(direct.headers['x-instance'], 'echo:off');

    kernel.setWeight(on, 0);
    await settled();
    const none = await request(url, 'echo.localhost', '/echo');
    assert.equal(none.status, 503);
    assert.equal((JSON.parse(none.body) as { error: { code: string } }).error.code, 'TNM_ERR_NO_HEALTHY_INSTANCE');
    assert.deepEqual(Object.fromEntries(spawns), { 'echo:on': 1, 'echo:off': 1 });
  });

  test(`weighted: a dead instance (restarting after SIGKILL) is skipped, never a 502 (${edge} edge)`, { timeout: TIMEOUT, skip: edgeSkip(edge) }, async (t) => {
    // A long backoff keeps the killed instance in `restarting` for the whole test.
    const { kernel, url, spawns, settled } = await edgeKernel(t, edge, { echo: echoService({ backoff: { base: '10m', max: '10m' } }) });
    const survivor = await running(kernel, 'echo', 'survivor');
    const victim = await running(kernel, 'echo', 'victim');
    // The victim would get most of the traffic if it were up.
    kernel.setWeight(survivor, 10);
    kernel.setWeight(victim, 90);
    await settled();
    const pid = victim.handle!.pid!;
    process.kill(pid, 'SIGKILL');
    // Right after the kill, before or while the kernel notices: connects to it are refused and fall back.
    const early = tally(await manyRequests(url, 'echo.localhost', 40, { path: '/echo' }));
    assert.deepEqual(Object.fromEntries(early), { 'echo:survivor': 40 });
    await waitFor(() => victim.state === 'restarting', 'the victim to be restarting', 15_000);
    await settled();
    const late = tally(await manyRequests(url, 'echo.localhost', 60, { path: '/echo' }));
    assert.deepEqual(Object.fromEntries(late), { 'echo:survivor': 60 });
    assert.equal(victim.state, 'restarting');
    assert.ok(!alive(pid));
    assert.deepEqual(Object.fromEntries(spawns), { 'echo:survivor': 1, 'echo:victim': 1 });
  });

  test(`weighted: a failed instance never gets traffic (${edge} edge)`, { timeout: TIMEOUT, skip: edgeSkip(edge) }, async (t) => {
    const { kernel, url, spawns, settled } = await edgeKernel(t, edge, { echo: echoService({ maxRestarts: 0 }) });
    const good = await running(kernel, 'echo', 'good');
    const broken = await running(kernel, 'echo', 'broken');
    kernel.setWeight(good, 1);
    kernel.setWeight(broken, 100);
    await settled();
    process.kill(broken.handle!.pid!, 'SIGKILL');
    await waitFor(() => broken.state === 'failed', 'the broken instance to be failed', 15_000);
    await settled();
    const counts = tally(await manyRequests(url, 'echo.localhost', 80, { path: '/echo' }));
    assert.deepEqual(Object.fromEntries(counts), { 'echo:good': 80 });
    assert.equal(broken.state, 'failed');
    // Nothing tried to bring it back.
    assert.deepEqual(Object.fromEntries(spawns), { 'echo:good': 1, 'echo:broken': 1 });

    // With only the failed one left to choose from, the service has nothing to offer.
    kernel.setWeight(good, 0);
    await settled();
    const none = await request(url, 'echo.localhost', '/echo');
    assert.equal(none.status, 503);
    assert.equal((JSON.parse(none.body) as { error: { code: string } }).error.code, 'TNM_ERR_NO_HEALTHY_INSTANCE');
    assert.deepEqual(Object.fromEntries(spawns), { 'echo:good': 1, 'echo:broken': 1 });
  });
}
