// Stopping leaves nothing behind: the app, the processes it started, and apps that ignore SIGTERM.
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import type { Instance } from '../../core/instance.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import { findOrphans, signalQuietly } from '../../core/orphans.ts';
import { ECHO_APP, alive, echoService, gone, procState, request, servePlugins, sleep, trackedKernel, waitFor, type Reply } from '../helpers.ts';

/** Reports (as a test diagnostic) any pid that is only gone as a zombie: it is dead but not yet reaped. */
function noteZombies(t: TestContext, pids: number[]): void {
  for (const pid of pids) {
    if (alive(pid) && procState(pid) === 'Z') t.diagnostic(`pid ${pid} lingers as a zombie`);
  }
}

/** Live processes of instances under `instancesRoot`, found by the environment every instance inherits. */
function leftovers(instancesRoot: string): number[] {
  return findOrphans(instancesRoot)
    .map((p) => p.pid)
    .filter((pid) => !gone(pid));
}

/** Kills what a failing test left, so a leak fails the test instead of hanging the runner; returns the pids. */
function killLeftovers(instancesRoot: string): number[] {
  const pids = leftovers(instancesRoot);
  for (const pid of pids) signalQuietly(pid, 'SIGKILL');
  return pids;
}

async function spawnGrandchild(instance: Instance): Promise<number> {
  const reply = await request(`http://127.0.0.1:${instance.handle!.address.port}`, 'localhost', '/spawn-child');
  assert.equal(reply.status, 200);
  const pid = Number(reply.body);
  assert.ok(pid > 0 && alive(pid), `grandchild ${pid} runs`);
  return pid;
}

const HOST = 'a.echo.localhost';

describe('stopping', { timeout: 120_000 }, () => {
  test('removing an instance ends its process and the grandchild it started', async (t) => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: { services: { echo: echoService({ idleTimeout: false }) } },
    });
    try {
      const instance = await kernel.spawnInstance('echo', 'a');
      const pid = instance.handle!.pid!;
      // Through the proxy, the way a tenant's request would start it.
      const reply = await request(kernel, HOST, '/spawn-child');
      assert.equal(reply.status, 200);
      const grandchild = Number(reply.body);
      assert.ok(alive(grandchild), 'the grandchild runs');
      assert.equal(procState(grandchild) !== null && procState(grandchild) !== 'Z', true);

      const started = Date.now();
      await kernel.removeInstance(instance);
      t.diagnostic(`removeInstance took ${Date.now() - started}ms`);
      assert.equal(kernel.instances.get('echo', 'a'), undefined, 'the instance is forgotten');
      assert.equal(kernel.store.listInstances().length, 0, 'and removed from the store');
      noteZombies(t, [pid, grandchild]);
      assert.ok(gone(pid), `app ${pid} is gone (${procState(pid)})`);
      assert.ok(gone(grandchild), `grandchild ${grandchild} is gone (${procState(grandchild)})`);
      // A zombie is reaped by its new parent soon after; nothing should stay in the process table for long.
      await waitFor(() => !alive(pid) && !alive(grandchild), 'both pids to leave the process table', 10_000);
    } finally {
      await kernel.close();
    }
  });

  test('an app that ignores SIGTERM is killed once stopTimeout has passed', async (t) => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: { echo: echoService({ idleTimeout: false, stopTimeout: '700ms', env: { IGNORE_SIGTERM: '1' } }) },
      },
    });
    try {
      const instance = await kernel.spawnInstance('echo', 'a');
      const pid = instance.handle!.pid!;
      const grandchild = await spawnGrandchild(instance);

      const started = Date.now();
      await kernel.removeInstance(instance);
      const took = Date.now() - started;
      t.diagnostic(`stop took ${took}ms with stopTimeout 700ms`);
      noteZombies(t, [pid, grandchild]);
      assert.ok(gone(pid), `app ${pid} is gone`);
      assert.ok(gone(grandchild), `grandchild ${grandchild} is gone`);
      assert.equal(instance.lastExit?.signal, 'SIGKILL', 'it took a SIGKILL');
      assert.ok(took >= 650, `the app was given its grace period (${took}ms)`);
      assert.ok(took < 700 + 8_000, `stop finished within stopTimeout plus slack (${took}ms)`);
    } finally {
      await kernel.close();
    }
  });

  test('kernel shutdown stops an app that ignores SIGTERM, and its grandchild', async (t) => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: { echo: echoService({ idleTimeout: false, stopTimeout: '500ms', env: { IGNORE_SIGTERM: '1' } }) },
      },
    });
    let pids: number[] = [];
    try {
      const a = await kernel.spawnInstance('echo', 'a');
      const b = await kernel.spawnInstance('echo', 'b');
      pids = [a.handle!.pid!, b.handle!.pid!, await spawnGrandchild(a), await spawnGrandchild(b)];
    } finally {
      await kernel.close();
    }
    noteZombies(t, pids);
    for (const pid of pids) assert.ok(gone(pid), `${pid} is gone after kernel.close()`);
  });

  test('kernel shutdown while a hibernation is stopping an instance waits for its process to be gone', async (t) => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        // It ignores SIGTERM, so the hibernation's stop lasts its whole stopTimeout.
        services: { echo: echoService({ idleTimeout: false, stopTimeout: '1500ms', env: { IGNORE_SIGTERM: '1' } }) },
      },
    });
    let pid = 0;
    let hibernating: Promise<unknown> = Promise.resolve();
    let hibernateError: unknown = null;
    try {
      const instance = await kernel.spawnInstance('echo', 'a');
      pid = instance.handle!.pid!;
      hibernating = kernel.hibernate(instance).catch((error: unknown) => {
        hibernateError = error;
      });
      assert.equal(instance.state, 'stopping');
    } finally {
      await kernel.close();
    }
    // `ten serve` exits right after this: anything still running now would be left behind.
    noteZombies(t, [pid]);
    assert.ok(gone(pid), `the app ${pid} is gone when kernel.close() resolves`);
    await hibernating;
    if (hibernateError) t.diagnostic(`the interrupted hibernation failed: ${String(hibernateError)}`);
  });

  test('a request waiting on a hibernation during kernel shutdown does not wake a process that outlives the kernel', async (t) => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: { echo: echoService({ idleTimeout: false, stopTimeout: '1000ms', env: { IGNORE_SIGTERM: '1' } }) },
      },
    });
    const instancesRoot = path.join(kernel.config.settings.dataDir, 'instances');
    let waiting: Promise<Reply | Error> = Promise.resolve(new Error('not sent'));
    let hibernating: Promise<unknown> = Promise.resolve();
    try {
      const instance = await kernel.spawnInstance('echo', 'a');
      hibernating = kernel.hibernate(instance).catch((error: unknown) => error);
      assert.equal(instance.state, 'stopping');
      // This request waits for the stop to end, then asks for a wake...
      waiting = request(kernel, HOST, '/pid').catch((error: unknown) => error as Error);
      await sleep(150);
      assert.equal(instance.state, 'stopping', 'still stopping when the shutdown begins');
    } finally {
      // ...while the kernel is shutting down.
      await kernel.close();
    }
    const left = leftovers(instancesRoot);
    await sleep(500);
    const late = killLeftovers(instancesRoot);
    assert.deepEqual(left, [], 'no instance process outlives kernel.close()');
    assert.deepEqual(late, [], 'nor appears afterwards');
    const reply = await waiting;
    t.diagnostic(`the waiting request got ${reply instanceof Error ? reply.message : `${reply.status} ${reply.body}`}`);
    await hibernating;
  });

  test('removing an instance while a hibernation is stopping it waits for that stop and forgets the instance', async (t) => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: { echo: echoService({ idleTimeout: false, stopTimeout: '1500ms', env: { IGNORE_SIGTERM: '1' } }) },
      },
    });
    try {
      const instance = await kernel.spawnInstance('echo', 'a');
      const pid = instance.handle!.pid!;
      const hibernating = kernel.hibernate(instance);
      assert.equal(instance.state, 'stopping');
      await kernel.removeInstance(instance);
      await hibernating;
      noteZombies(t, [pid]);
      assert.ok(gone(pid), `the app ${pid} is gone`);
      assert.equal(instance.state, 'stopped');
      assert.equal(kernel.instances.get('echo', 'a'), undefined, 'the instance is forgotten');
      assert.deepEqual(kernel.store.listInstances(), [], 'and stays out of the store');
    } finally {
      await kernel.close();
    }
  });

  test('removing an instance while requests wait for it to start leaves no process behind', async (t) => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: {
          // Slow to come up, so the removal lands while requests are queued for the start.
          echo: { command: 'sh', args: ['-c', `sleep 1; exec node ${ECHO_APP}`], health: '/health', idleTimeout: false, startupTimeout: '30s' },
        },
      },
    });
    const instancesRoot = path.join(kernel.config.settings.dataDir, 'instances');
    const live = (): number[] => leftovers(instancesRoot);
    try {
      const instance = kernel.createInstance('echo', 'a');
      const replies = Array.from({ length: 5 }, () => request(kernel, HOST, '/pid', { timeoutMs: 60_000 }));
      await waitFor(() => instance.handle !== null, 'the start the requests asked for', 30_000);
      assert.equal(instance.state, 'starting');
      await kernel.removeInstance(instance);
      assert.deepEqual(live(), [], 'nothing runs once the removal resolved');
      const statuses = (await Promise.all(replies)).map((r) => r.status);
      t.diagnostic(`the waiting requests got ${statuses.join(', ')}`);
      assert.deepEqual(statuses, [503, 503, 503, 503, 503], 'the waiting requests are refused, not served by a new start');
      await sleep(1_500);
      assert.deepEqual(live(), [], 'and nothing was started for the removed instance afterwards');
      assert.equal(kernel.instances.get('echo', 'a'), undefined);
    } finally {
      await kernel.close();
      const left = killLeftovers(instancesRoot);
      assert.deepEqual(left, [], 'no instance process outlives kernel.close()');
    }
  });

  test("a crashed leader's leftover grandchild is killed with it", async (t) => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: { echo: echoService({ idleTimeout: false, restart: 'always', backoff: { base: '100ms' } }) },
      },
    });
    try {
      const instance = await kernel.spawnInstance('echo', 'a');
      const pid = instance.handle!.pid!;
      const grandchild = await spawnGrandchild(instance);
      process.kill(pid, 'SIGKILL');
      await waitFor(() => gone(pid) && gone(grandchild), 'the leader and its grandchild to be gone', 15_000);
      noteZombies(t, [pid, grandchild]);
      // The restarted instance is a fresh process group without the old grandchild.
      await waitFor(
        () => instance.state === 'running' && instance.handle !== null && instance.handle.pid !== pid,
        'the restart',
        30_000,
      );
      assert.ok(gone(grandchild));
      await waitFor(() => !alive(grandchild), 'the grandchild to leave the process table', 10_000);
    } finally {
      await kernel.close();
    }
  });
});

test('a port taken by another program before the app binds it is noticed: the instance restarts on another port', { timeout: 60_000 }, async (t) => {
  // The app binds late; in between, a stranger takes its port. The stranger answers health checks, but the
  // kernel sees that the listener is not the instance's own and starts it again elsewhere.
  const app = `setTimeout(() => require('http').createServer((q, s) => s.end('app ' + process.pid)).listen(process.env.PORT, '127.0.0.1'), 400)`;
  const { kernel, events } = await trackedKernel(t, { late: { command: 'node', args: ['-e', app], backoff: { base: '50ms' } } });
  const strangers: net.Server[] = [];
  t.after(() => strangers.forEach((s) => s.close()));
  let first = true;
  kernel.hooks.stateChange.tap('stranger', (event) => {
    if (event.type !== 'spawned' || !first) return;
    first = false;
    const port = Number(/on port (\d+)/.exec(event.reason ?? '')?.[1]);
    const stranger = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.end('HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nstranger');
    });
    stranger.listen(port, '127.0.0.1');
    strangers.push(stranger);
  });
  const instance = await kernel.spawnInstance('late', 'a');
  await waitFor(() => instance.state === 'running', 'the instance to run on a port of its own', 20_000);
  const reply = await request(kernel, 'a.late.localhost', '/');
  assert.equal(reply.status, 200);
  assert.match(reply.body, /^app \d+$/, 'the answer comes from the app, never from the stranger');
  assert.ok(events.some((e) => e.type === 'restarting' && /another program took it/.test(e.reason ?? '')));
  assert.notEqual(instance.port, (strangers[0]!.address() as net.AddressInfo).port);
});
