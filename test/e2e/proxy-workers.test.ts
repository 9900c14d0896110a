// Proxy workers (settings.proxy.workers): more processes accepting from the kernel's listening socket, with
// routes mirrored from the kernel. Real worker processes, real instances, real sockets; every request on a fresh
// connection, so the kernel's process and the worker both take some.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Kernel } from '../../core/kernel.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import type { PluginEntry } from '../../core/plugin.ts';
import { definePlugin } from '../../sdk/index.ts';
import { alive, echoService, recordEvents, request, servePlugins, waitFor } from '../helpers.ts';

const HOST = 'a.echo.localhost';

/** Counts what the kernel's `request` hook sees (so workers report their requests to it). */
function requestCounter(): { plugin: PluginEntry; seen: Array<{ key: string; status: number }> } {
  const seen: Array<{ key: string; status: number }> = [];
  const plugin = definePlugin({
    name: 'request-counter',
    version: '1.0.0',
    kernel: '^1',
    setup(ctx) {
      ctx.hooks.request.tap((r) => void seen.push({ key: r.instance.key, status: r.status }));
    },
  });
  return { plugin, seen };
}

async function workersKernel(config: Parameters<typeof createTestKernel>[0]['config'], plugins: PluginEntry[] = servePlugins): Promise<TestKernel> {
  const kernel = await createTestKernel({ plugins, config: { ...config, settings: { ...config?.settings, proxy: { workers: 2, accept: 'spread' } } } });
  assert.equal(kernel.server.proxyWorkers().pids.length, 1, 'one worker besides the kernel process');
  return kernel;
}

/** Requests on fresh connections until `count` were served by a worker (bounded), each checked by `check`. */
async function untilWorkersServed(kernel: Kernel, count: number, send: () => Promise<void>, limit = 400, what: 'requests' | 'handedBack' = 'requests'): Promise<void> {
  const before = kernel.server.proxyWorkers()[what];
  for (let i = 0; i < limit; i++) {
    await send();
    // Reports are batched: wait for this one before counting.
    if (i % 20 === 19) {
      await new Promise((resolve) => setTimeout(resolve, 120));
      if (kernel.server.proxyWorkers()[what] - before >= count) return;
    }
  }
  assert.fail(`the worker ${what === 'requests' ? 'served' : 'handed back'} fewer than ${count} of ${limit} requests`);
}

describe('proxy workers', { timeout: 180_000 }, () => {
  test('a worker serves requests; the kernel sees them (request hook, activity, in-flight back to 0)', async () => {
    const counter = requestCounter();
    const kernel = await workersKernel({ services: { echo: echoService() } }, [...servePlugins, counter.plugin]);
    try {
      const instance = await kernel.spawnInstance('echo', 'a');
      const pid = String(instance.handle!.pid);
      const activityBefore = instance.lastActivity;
      let sent = 0;
      await untilWorkersServed(kernel, 10, async () => {
        const reply = await request(kernel, HOST, '/pid');
        assert.equal(reply.status, 200, reply.body);
        assert.equal(reply.body, pid);
        sent++;
      });
      await waitFor(() => counter.seen.length === sent, `the request hook to see all ${sent} requests (saw ${counter.seen.length})`, 10_000);
      assert.ok(counter.seen.every((r) => r.key === 'echo:a' && r.status === 200));
      assert.ok(instance.lastActivity > activityBefore, 'worker traffic is activity');
      await waitFor(() => instance.inFlight === 0, 'in-flight back to 0', 10_000);
      // The management surface is the kernel's: a worker hands it back.
      const health = await request(kernel, 'localhost', '/health');
      assert.equal(health.status, 200);
    } finally {
      await kernel.close();
    }
  });

  test('no stale route after a hibernation and wake, a weight change, a swap or a removal', async () => {
    const kernel = await workersKernel({ services: { echo: echoService(), web: echoService() } });
    try {
      const a = await kernel.spawnInstance('echo', 'a');
      const v1 = await kernel.spawnInstance('web', 'v1');
      const v2 = kernel.createInstance('web', 'v2', { weight: 0 });
      await kernel.spawnInstance('web', 'v2');
      const pidOf = (instance: { handle: { pid: number | null } | null }): string => String(instance.handle!.pid);
      const expectAll = async (host: string, want: (reply: { status: number; body: string }) => void, through: 'requests' | 'handedBack' = 'requests'): Promise<void> => {
        await kernel.server.proxyWorkersSynced();
        await untilWorkersServed(kernel, 5, async () => want(await request(kernel, host, '/pid')), 400, through);
      };

      // Warm the worker's mirror of both hosts.
      const firstA = pidOf(a);
      await expectAll(HOST, (r) => assert.equal(r.body, firstA));
      await expectAll('web.localhost', (r) => assert.equal(r.body, pidOf(v1), 'weight 0 gets nothing'));

      // Hibernation: the mirrored address is gone; the next request wakes it (in the kernel), then workers use the new one.
      await kernel.hibernate(a);
      const woken = await request(kernel, HOST, '/pid');
      assert.equal(woken.status, 200, woken.body);
      assert.notEqual(woken.body, firstA);
      assert.equal(woken.body, pidOf(a));
      await expectAll(HOST, (r) => {
        assert.equal(r.status, 200, r.body);
        assert.equal(r.body, pidOf(a), 'the woken process, never the hibernated one');
      });

      // A swap is two weight changes: all traffic moves at once.
      kernel.setWeight(v2, 100);
      kernel.setWeight(v1, 0);
      await expectAll('web.localhost', (r) => assert.equal(r.body, pidOf(v2), 'after the swap only v2'));
      kernel.setWeight(v1, 100);
      kernel.setWeight(v2, 0);
      await expectAll('web.localhost', (r) => assert.equal(r.body, pidOf(v1), 'swapped back: only v1'));

      // Removal: the instance is unknown from then on, in every process.
      await kernel.removeInstance(a);
      // An unknown instance is the kernel's answer: workers hand every such request back.
      await expectAll(HOST, (r) => assert.equal(r.status, 404, r.body), 'handedBack');
    } finally {
      await kernel.close();
    }
  });

  test('a stale route is handed back, not answered 502: the instance stopped before the worker heard', async () => {
    const kernel = await workersKernel({ services: { echo: echoService() } });
    try {
      const a = await kernel.spawnInstance('echo', 'a');
      const old = String(a.handle!.pid);
      await untilWorkersServed(kernel, 3, async () => assert.equal((await request(kernel, HOST, '/pid')).body, old));
      // The app stops listening without any state change: the worker's mirrored address now refuses.
      const closed = await request(kernel, HOST, '/close-listener');
      assert.equal(closed.status, 200);
      const handedBefore = kernel.server.proxyWorkers().handedBack;
      // Together: a refused request on its last candidate waits up to a second for the instance's run to change.
      const replies = await Promise.all(Array.from({ length: 30 }, () => request(kernel, HOST, '/pid')));
      for (const reply of replies) {
        // The kernel's own answer for a refusing instance (its path has the full policy), never the worker's:
        // a 502, or the answer of a new run if the health checks restarted the instance meanwhile.
        assert.ok(reply.status !== 200 || reply.body !== old, `${reply.status} ${reply.body}`);
      }
      assert.ok(kernel.server.proxyWorkers().handedBack > handedBefore, 'the worker handed refused requests back');
    } finally {
      await kernel.close();
    }
  });

  test('one spawn per herd when the herd arrives on several processes', async () => {
    const kernel = await workersKernel({ services: { echo: echoService() } });
    try {
      const a = await kernel.spawnInstance('echo', 'a');
      // Both processes' mirrors know the host.
      await untilWorkersServed(kernel, 2, async () => assert.equal((await request(kernel, HOST, '/pid')).status, 200));
      await kernel.hibernate(a);
      await kernel.server.proxyWorkersSynced();
      const events = recordEvents(kernel);
      const handedBefore = kernel.server.proxyWorkers().handedBack;
      const replies = await Promise.all(Array.from({ length: 40 }, () => request(kernel, HOST, '/pid')));
      assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([200]));
      assert.equal(new Set(replies.map((r) => r.body)).size, 1, 'one process answered the whole herd');
      assert.equal(events.filter((e) => e.instance === 'echo:a' && e.type === 'spawned').length, 1, 'one spawn');
      assert.ok(kernel.server.proxyWorkers().handedBack > handedBefore, 'part of the herd came through the worker');
    } finally {
      await kernel.close();
    }
  });

  test('a worker that crashes is replaced; the host keeps serving and its in-flight counts are given back', async () => {
    const kernel = await workersKernel({ services: { echo: echoService() } });
    try {
      const a = await kernel.spawnInstance('echo', 'a');
      const [first] = kernel.server.proxyWorkers().pids;
      assert.ok(first);
      // Requests held in the worker (slow answers) when it dies.
      const held = Array.from({ length: 6 }, () => request(kernel, HOST, '/slow?ms=3000').catch(() => null));
      await waitFor(() => a.inFlight > 0, 'requests in flight', 10_000);
      process.kill(first, 'SIGKILL');
      await waitFor(() => !alive(first), 'the worker to die', 10_000);
      for (let i = 0; i < 10; i++) assert.equal((await request(kernel, HOST, '/pid')).status, 200, 'served while the worker is replaced');
      await waitFor(() => kernel.server.proxyWorkers().pids.some((pid) => pid !== first), 'a replacement worker', 20_000);
      await Promise.all(held);
      await waitFor(() => a.inFlight === 0, `in-flight back to 0 (is ${a.inFlight})`, 20_000);
      await untilWorkersServed(kernel, 3, async () => assert.equal((await request(kernel, HOST, '/pid')).status, 200));
    } finally {
      await kernel.close();
    }
  });

  test('hostile hosts: __proto__, unknown names and a flood of names are the kernel’s coded errors', async () => {
    const kernel = await workersKernel({ services: { echo: echoService() } });
    try {
      await kernel.spawnInstance('echo', 'a');
      for (const host of ['__proto__.echo.localhost', 'constructor.echo.localhost', 'a.__proto__.localhost', 'x.nope.localhost']) {
        for (let i = 0; i < 6; i++) {
          const reply = await request(kernel, host, '/pid');
          assert.ok(reply.status >= 400 && reply.status < 500, `${host}: ${reply.status}`);
          assert.match(reply.body, /TNM_ERR_/);
        }
      }
      // More names than a worker mirrors: it starts over, it does not grow.
      await Promise.all(Array.from({ length: 300 }, (_, i) => request(kernel, `n${i}.echo.localhost`, '/').then((r) => assert.equal(r.status, 404))));
      assert.equal((await request(kernel, HOST, '/pid')).status, 200);
      // Every connection it handed back is forgotten there (the kernel's process owns it now).
      assert.ok(kernel.server.proxyWorkers().handedBack >= 1, 'the worker handed some back');
      await waitFor(async () => (await kernel.server.proxyWorkersSynced(), kernel.server.proxyWorkers().connections === 0), 'the worker to hold no connection', 10_000);
    } finally {
      await kernel.close();
    }
  });
});
