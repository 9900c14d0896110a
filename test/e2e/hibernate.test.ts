// Scale to zero, end to end: real echo-app processes behind a real kernel with the default plugins.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Kernel } from '../../core/kernel.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import type { InstanceEvent } from '../../core/types.ts';
import { ECHO_APP, countChecks, echoService, gone, recordEvents, request, servePlugins, sleep, waitFor } from '../helpers.ts';

/** Every lifecycle event, with the instance's in-flight count at the moment it was emitted. */
function recordWithInFlight(kernel: Kernel): Array<InstanceEvent & { inFlight: number }> {
  return recordEvents(kernel, (event) => ({ inFlight: kernel.instances.getByKey(event.instance)?.inFlight ?? -1 }));
}

const HOST = 'a.echo.localhost';

describe('hibernation', { timeout: 120_000 }, () => {
  test('an idle instance hibernates, stays listed, and a request wakes it with a new process', async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: { services: { echo: echoService({ idleTimeout: '300ms' }) } },
    });
    try {
      const events = recordWithInFlight(kernel);
      const instance = await kernel.spawnInstance('echo', 'a');
      assert.equal(instance.state, 'running');
      const first = await request(kernel, HOST, '/pid');
      assert.equal(first.status, 200);
      const firstPid = Number(first.body);
      assert.ok(firstPid > 0);

      await waitFor(() => instance.state === 'hibernated', 'the idle instance to hibernate', 20_000);
      assert.equal(kernel.instances.get('echo', 'a'), instance, 'a hibernated instance stays registered');
      assert.deepEqual(
        kernel.instances.list({ state: 'hibernated' }).map((i) => i.key),
        ['echo:a'],
      );
      assert.equal(instance.handle, null);
      assert.equal(instance.toJSON().pid, null);
      assert.ok(gone(firstPid), `the hibernated process ${firstPid} is gone`);
      const stored = kernel.store.listInstances().find((row) => row.service === 'echo' && row.id === 'a');
      assert.equal(stored?.desired, 'hibernated');
      const hibernated = events.find((e) => e.instance === 'echo:a' && e.type === 'hibernated');
      assert.match(hibernated?.reason ?? '', /idle/);

      const second = await request(kernel, HOST, '/pid');
      assert.equal(second.status, 200);
      const secondPid = Number(second.body);
      assert.ok(secondPid > 0);
      assert.notEqual(secondPid, firstPid, 'woken on a new process');
      assert.ok(events.some((e) => e.instance === 'echo:a' && e.type === 'woken'));
      const restored = kernel.store.listInstances().find((row) => row.service === 'echo' && row.id === 'a');
      assert.equal(restored?.desired, 'running', 'waking records the instance as running again');
    } finally {
      await kernel.close();
    }
  });

  test('health checks are not activity: an instance checked often still hibernates', async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: { echo: echoService({ idleTimeout: '600ms', health: { path: '/health', interval: '50ms' } }) },
      },
    });
    try {
      const checks = countChecks(kernel, 'http');
      const instance = await kernel.spawnInstance('echo', 'a');
      const reply = await request(kernel, HOST, '/pid');
      assert.equal(reply.status, 200);
      const activity = instance.lastActivity;
      const idleSince = Date.now();

      await waitFor(() => instance.state === 'hibernated', 'the instance to hibernate despite health checks', 20_000);
      const hibernatedAt = instance.stateSince;
      const duringIdle = checks.filter((at) => at >= idleSince && at <= hibernatedAt).length;
      assert.ok(duringIdle >= 2, `health checks ran while it was idle (${duringIdle})`);
      assert.equal(instance.lastActivity, activity, 'health checks did not touch lastActivity');
    } finally {
      await kernel.close();
    }
  });

  test('an in-flight slow request holds hibernation off until it is done', async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: { services: { echo: echoService({ idleTimeout: '300ms' }) } },
    });
    try {
      const events = recordWithInFlight(kernel);
      const instance = await kernel.spawnInstance('echo', 'a');
      const pid = instance.handle!.pid!;
      // Five times the idle timeout: the idle check runs many times while the request is open.
      const slow = await request(kernel, HOST, '/slow?ms=1500');
      assert.equal(slow.status, 200, 'the slow request was answered, so its instance was not stopped under it');
      assert.equal(slow.body, 'slow');
      const stops = events.filter((e) => e.instance === 'echo:a' && e.type === 'stopping');
      assert.ok(
        stops.every((e) => e.inFlight === 0),
        `no stop began with a request in flight: ${JSON.stringify(stops)}`,
      );

      await waitFor(() => instance.state === 'hibernated', 'hibernation once the request finished', 20_000);
      assert.ok(gone(pid));
      const stopping = events.filter((e) => e.instance === 'echo:a' && e.type === 'stopping');
      assert.equal(stopping.length, 1);
      assert.equal(stopping[0]!.inFlight, 0);
    } finally {
      await kernel.close();
    }
  });

  test('a request that arrives while the instance is being hibernated waits and is answered by a woken process', async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        // It ignores SIGTERM, so the hibernation's stop lasts its stopTimeout: a wide window to arrive in.
        services: { echo: echoService({ idleTimeout: false, stopTimeout: '800ms', env: { IGNORE_SIGTERM: '1' } }) },
      },
    });
    try {
      const events = recordWithInFlight(kernel);
      const instance = await kernel.spawnInstance('echo', 'a');
      const oldPid = instance.handle!.pid!;
      const hibernating = kernel.hibernate(instance);
      assert.equal(instance.state, 'stopping');
      const reply = await request(kernel, HOST, '/pid');
      await hibernating;
      assert.equal(reply.status, 200, reply.body);
      assert.notEqual(Number(reply.body), oldPid, 'answered by a new process, not the one being stopped');
      assert.ok(gone(oldPid));
      assert.deepEqual(
        events.filter((e) => e.instance === 'echo:a').map((e) => e.type).slice(-6),
        ['ready', 'stopping', 'hibernated', 'waking', 'spawned', 'woken'],
      );
      assert.equal(instance.state, 'running');
      const stored = kernel.store.listInstances().find((row) => row.id === 'a');
      assert.equal(stored?.desired, 'running', 'the wake, which came last, is what is stored');
    } finally {
      await kernel.close();
    }
  });

  test('a hibernated instance hit by 200 concurrent requests spawns once and answers all of them', async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        // No idle timer here: the instance is put to sleep by hand, and must not doze off mid-burst.
        services: { echo: echoService({ idleTimeout: false, startupTimeout: '30s' }) },
      },
    });
    try {
      const events = recordWithInFlight(kernel);
      const instance = await kernel.spawnInstance('echo', 'a');
      const oldPid = instance.handle!.pid!;
      await kernel.hibernate(instance);
      assert.equal(instance.state, 'hibernated');
      assert.ok(gone(oldPid));
      const hibernatedIndex = events.findIndex((e) => e.instance === 'echo:a' && e.type === 'hibernated');
      assert.ok(hibernatedIndex >= 0);

      const replies = await Promise.all(
        Array.from({ length: 200 }, () => request(kernel, HOST, '/pid', { timeoutMs: 60_000 })),
      );
      const statuses = new Map<number, number>();
      for (const r of replies) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      assert.deepEqual([...statuses], [[200, 200]], `every request answered 200: ${JSON.stringify([...statuses])}`);
      const pids = new Set(replies.map((r) => r.body));
      assert.equal(pids.size, 1, `one process answered all: ${[...pids].join(', ')}`);
      const pid = Number([...pids][0]);
      assert.notEqual(pid, oldPid);
      assert.equal(instance.handle?.pid, pid);

      const after = events.slice(hibernatedIndex + 1).filter((e) => e.instance === 'echo:a');
      assert.equal(after.filter((e) => e.type === 'spawned').length, 1, 'exactly one spawn');
      assert.deepEqual(
        after.map((e) => e.type),
        ['waking', 'spawned', 'woken'],
      );
      const before = events.slice(0, hibernatedIndex + 1).filter((e) => e.instance === 'echo:a').map((e) => e.type);
      assert.deepEqual(before, ['created', 'starting', 'spawned', 'ready', 'stopping', 'hibernated']);
      // Emitted in order, with non-decreasing timestamps.
      for (let i = 1; i < events.length; i++) assert.ok(events[i]!.at >= events[i - 1]!.at);
      await sleep(200);
      assert.equal(events.filter((e) => e.type === 'spawned').length, 2, 'nothing else spawned afterwards');
    } finally {
      await kernel.close();
    }
  });
});

test('a wake that fails answers every waiting request from one start, not one start each', { timeout: 60_000 }, async () => {
  // The app exits cleanly at once; under restart: on-failure that leaves it `stopped`, so the wake failed.
  const kernel = await createTestKernel({
    plugins: servePlugins,
    config: { services: { quitter: { command: 'node -e "process.exit(0)"', restart: 'on-failure', startupTimeout: '5s' } } },
  });
  try {
    const events = recordWithInFlight(kernel);
    const instance = kernel.createInstance('quitter', 'a');
    kernel.instances.transition(instance, 'hibernated', 'hibernated', 'test');
    const replies = await Promise.all(Array.from({ length: 8 }, () => request(kernel, 'a.quitter.localhost', '/')));
    assert.deepEqual(new Set(replies.map((r) => r.status)), new Set([503]));
    for (const reply of replies) assert.equal((JSON.parse(reply.body) as { error: { code: string } }).error.code, 'TNM_ERR_WAKE_FAILED');
    assert.equal(events.filter((e) => e.type === 'spawned').length, 1, 'exactly one start for the whole queue');
    // A later request is a new wave and may try again, once.
    const later = await request(kernel, 'a.quitter.localhost', '/');
    assert.equal(later.status, 503);
    assert.equal(events.filter((e) => e.type === 'spawned').length, 2);
  } finally {
    await kernel.close();
  }
});

test('a wake that needs a restart on the way still answers the waiting request and reports woken', { timeout: 60_000 }, async () => {
  // The first start of each wake fails (it leaves a marker), the restart succeeds.
  const script = `if [ -f "$DATA_DIR/failed-once" ]; then rm "$DATA_DIR/failed-once"; exec node ${JSON.stringify(ECHO_APP)}; else touch "$DATA_DIR/failed-once"; exit 1; fi`;
  const kernel = await createTestKernel({
    plugins: servePlugins,
    config: { services: { flaky: { command: 'sh', args: ['-c', script], health: '/health', backoff: { base: '50ms' } } } },
  });
  try {
    const events = recordWithInFlight(kernel);
    const instance = kernel.createInstance('flaky', 'a');
    kernel.instances.transition(instance, 'hibernated', 'hibernated', 'test');
    const reply = await request(kernel, 'a.flaky.localhost', '/pid');
    assert.equal(reply.status, 200);
    const types = events.filter((e) => e.instance === 'flaky:a').map((e) => e.type);
    assert.deepEqual(types.slice(types.indexOf('waking')), ['waking', 'spawned', 'restarting', 'starting', 'spawned', 'woken']);
  } finally {
    await kernel.close();
  }
});
