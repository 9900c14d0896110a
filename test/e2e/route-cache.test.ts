// The fast path's route cache (core/dataplane/route-cache.ts): a cached {id}.{service} route is never used after
// the routing changed. One process (settings.proxy.workers 1), real instances, each request on a fresh connection.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import { routing } from '../../core/dataplane/route-cache.ts';
import { echoService, request, servePlugins } from '../helpers.ts';

const HOST = 'a.echo.localhost';

test('a cached route follows a removal, a re-creation under the same name and a hibernation', { timeout: 120_000 }, async () => {
  const kernel = await createTestKernel({ plugins: servePlugins, config: { services: { echo: echoService() } } });
  try {
    const first = await kernel.spawnInstance('echo', 'a');
    // Twice: the second is answered from the cache.
    for (let i = 0; i < 2; i++) assert.equal((await request(kernel, HOST, '/pid')).body, String(first.handle!.pid));

    const generation = routing.generation;
    await kernel.removeInstance(first);
    assert.ok(routing.generation > generation, 'a removal moves the routing generation');
    const gone = await request(kernel, HOST, '/pid');
    assert.equal(gone.status, 404, gone.body);

    // The same name again is another Instance: the cache must not hand out the removed one.
    const second = await kernel.spawnInstance('echo', 'a');
    assert.notEqual(second, first);
    for (let i = 0; i < 2; i++) assert.equal((await request(kernel, HOST, '/pid')).body, String(second.handle!.pid));

    await kernel.hibernate(second);
    const woken = await request(kernel, HOST, '/pid');
    assert.equal(woken.status, 200, woken.body);
    assert.equal(woken.body, String(second.handle!.pid), 'woken, and reached at its new address');
  } finally {
    await kernel.close();
  }
});

test('a weight change moves the routing generation (weighted routes are never cached, mirrors are dropped)', async () => {
  const kernel = await createTestKernel({ plugins: servePlugins, config: { services: { echo: echoService() } } });
  try {
    const instance = kernel.createInstance('echo', 'a');
    const generation = routing.generation;
    kernel.setWeight(instance, 10);
    assert.ok(routing.generation > generation);
  } finally {
    await kernel.close();
  }
});
