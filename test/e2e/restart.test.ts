// Crash handling, end to end: real processes killed for real, and the restart policy that follows.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Instance } from '../../core/instance.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import type { InstanceEvent } from '../../core/types.ts';
import { alive, echoService, recordEvents, request, servePlugins, sleep, waitFor } from '../helpers.ts';

const count = (events: InstanceEvent[], type: InstanceEvent['type']): number => events.filter((e) => e.type === type).length;

/** Kills the instance's current process with SIGKILL and returns its pid. */
function killHard(instance: Instance): number {
  const pid = instance.handle?.pid;
  assert.ok(pid, `${instance.key} has a process`);
  process.kill(pid, 'SIGKILL');
  return pid;
}

const HOST = 'a.echo.localhost';

describe('restart policy', { timeout: 180_000 }, () => {
  test('kill -9 restarts with growing delays, gives up after maxRestarts, and only a manual restart revives it', async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: {
          echo: echoService({
            idleTimeout: false,
            restart: 'always',
            backoff: { base: '100ms', max: '10s', resetAfter: '10m' },
            maxRestarts: 3,
            restartWindow: '5m',
          }),
        },
      },
    });
    try {
      const events = recordEvents(kernel);
      const instance = await kernel.spawnInstance('echo', 'a');
      const pids = [instance.handle!.pid!];

      for (let round = 1; round <= 3; round++) {
        const killed = killHard(instance);
        await waitFor(
          () => instance.state === 'running' && instance.handle !== null && instance.handle.pid !== killed,
          `restart ${round}`,
          30_000,
        );
        await waitFor(() => !alive(killed), `the killed process ${killed} to be reaped`);
        pids.push(instance.handle!.pid!);
        const reply = await request(kernel, HOST, '/pid');
        assert.equal(reply.status, 200);
        assert.equal(Number(reply.body), instance.handle!.pid);
      }
      assert.equal(new Set(pids).size, 4, 'every restart is a new process');
      assert.equal(instance.restarts, 3);

      const restarting = events.filter((e) => e.instance === 'echo:a' && e.type === 'restarting');
      assert.equal(restarting.length, 3);
      const delays = restarting.map((e) => {
        assert.match(e.reason ?? '', /killed by SIGKILL/);
        const match = /restarting in (\d+)ms/.exec(e.reason ?? '');
        assert.ok(match, `the restart reason names its delay: ${e.reason}`);
        return Number(match[1]);
      });
      // base 100ms with equal jitter: [50,100], [100,200], [200,400].
      assert.ok(delays[0]! >= 50 && delays[0]! <= 100, `first delay ${delays[0]}`);
      for (let i = 1; i < delays.length; i++) assert.ok(delays[i]! >= delays[i - 1]!, `delays grow: ${delays.join(', ')}`);
      assert.ok(delays[2]! > delays[0]!, `delays grow: ${delays.join(', ')}`);
      // Each restart waited at least its announced delay before starting again.
      for (const event of restarting) {
        const delay = Number(/restarting in (\d+)ms/.exec(event.reason!)![1]);
        const next = events.find((e) => e.instance === 'echo:a' && e.type === 'starting' && e.at >= event.at && e.reason === 'restart');
        assert.ok(next, 'a start follows every restarting');
        assert.ok(next.at - event.at >= delay - 2, `waited ${next.at - event.at}ms for a ${delay}ms backoff`);
      }

      // The fourth crash inside the window is one too many.
      const lastPid = killHard(instance);
      await waitFor(() => instance.state === 'failed', 'the instance to be marked failed', 30_000);
      const failed = events.find((e) => e.instance === 'echo:a' && e.type === 'failed');
      assert.match(failed?.reason ?? '', /gave up after 3 restarts/);
      assert.equal(instance.handle, null);
      await waitFor(() => !alive(lastPid), 'the crashed process to be reaped');

      // 'failed' holds: requests get a 503 with a code, and nothing is spawned.
      const spawnedBefore = count(events, 'spawned');
      for (let i = 0; i < 3; i++) {
        const reply = await request(kernel, HOST, '/pid');
        assert.equal(reply.status, 503);
        assert.equal(JSON.parse(reply.body).error.code, 'TNM_ERR_INSTANCE_FAILED');
        assert.ok(reply.headers['retry-after']);
      }
      await sleep(800);
      assert.equal(instance.state, 'failed');
      assert.equal(count(events, 'spawned'), spawnedBefore, 'a failed instance is not spawned by requests or timers');

      await kernel.supervisor.restart(instance);
      assert.equal(instance.state, 'running');
      const revived = await request(kernel, HOST, '/pid');
      assert.equal(revived.status, 200);
      assert.equal(Number(revived.body), instance.handle!.pid);
      assert.ok(!pids.includes(Number(revived.body)));
      assert.equal(count(events, 'spawned'), spawnedBefore + 1);

      // A manual restart forgets the earlier failures: the next crash restarts again, from the base delay.
      const revivedPid = killHard(instance);
      await waitFor(
        () => instance.state === 'running' && instance.handle !== null && instance.handle.pid !== revivedPid,
        'restart after the revival',
        30_000,
      );
      const after = events.filter((e) => e.instance === 'echo:a' && e.type === 'restarting');
      assert.equal(after.length, 4);
      const again = after.at(-1)!;
      const delay = Number(/restarting in (\d+)ms/.exec(again.reason!)![1]);
      assert.ok(delay >= 50 && delay <= 100, `back to the base delay after a manual restart: ${delay}`);
    } finally {
      await kernel.close();
    }
  });

  test("restart: 'never' leaves a crashed instance failed", async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: { echo: echoService({ idleTimeout: false, restart: 'never', backoff: { base: '100ms' } }) },
      },
    });
    try {
      const events = recordEvents(kernel);
      const instance = await kernel.spawnInstance('echo', 'a');
      killHard(instance);
      await waitFor(() => instance.state === 'failed', 'failed after a crash', 30_000);
      await sleep(500);
      assert.equal(instance.state, 'failed');
      assert.equal(instance.restarts, 0);
      assert.equal(count(events, 'restarting'), 0);
      assert.equal(count(events, 'spawned'), 1);
      assert.equal(instance.lastExit?.signal, 'SIGKILL');
    } finally {
      await kernel.close();
    }
  });

  test("restart: 'never' with a clean exit ends in 'stopped'", async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: { echo: echoService({ idleTimeout: false, restart: 'never', backoff: { base: '100ms' } }) },
      },
    });
    try {
      const events = recordEvents(kernel);
      const instance = await kernel.spawnInstance('echo', 'a');
      const pid = instance.handle!.pid!;
      const bye = await request(kernel, HOST, '/exit?code=0');
      assert.equal(bye.status, 200);
      await waitFor(() => instance.state === 'stopped', 'stopped after a clean exit', 30_000);
      await waitFor(() => !alive(pid), 'the exited process to be reaped');
      await sleep(500);
      assert.equal(instance.state, 'stopped');
      assert.equal(count(events, 'restarting'), 0);
      assert.equal(count(events, 'spawned'), 1);
    } finally {
      await kernel.close();
    }
  });

  test("restart: 'on-failure' stops on exit code 0 and restarts on a non-zero exit", async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: { echo: echoService({ idleTimeout: false, restart: 'on-failure', backoff: { base: '100ms' } }) },
      },
    });
    try {
      const events = recordEvents(kernel);
      const clean = await kernel.spawnInstance('echo', 'a');
      const bye = await request(kernel, HOST, '/exit?code=0');
      assert.equal(bye.status, 200);
      await waitFor(() => clean.state === 'stopped', "'stopped' after exit code 0", 30_000);
      await sleep(500);
      assert.equal(clean.state, 'stopped');
      assert.equal(clean.restarts, 0);
      assert.equal(clean.lastExit?.code, 0);
      assert.equal(events.filter((e) => e.instance === 'echo:a' && e.type === 'restarting').length, 0);

      const crashing = await kernel.spawnInstance('echo', 'b');
      const pid = crashing.handle!.pid!;
      const crash = await request(kernel, 'b.echo.localhost', '/exit?code=3');
      assert.equal(crash.status, 200);
      await waitFor(
        () => crashing.state === 'running' && crashing.handle !== null && crashing.handle.pid !== pid,
        'a restart after exit code 3',
        30_000,
      );
      assert.equal(crashing.restarts, 1);
      const restarting = events.find((e) => e.instance === 'echo:b' && e.type === 'restarting');
      assert.match(restarting?.reason ?? '', /exited with code 3/);
      const reply = await request(kernel, 'b.echo.localhost', '/pid');
      assert.equal(reply.status, 200);
      assert.equal(Number(reply.body), crashing.handle!.pid);
    } finally {
      await kernel.close();
    }
  });
});
