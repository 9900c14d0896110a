// Health checks end to end: the monitor, unhealthy restarts, and readiness as the first passing check.
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { Kernel } from '../../core/kernel.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import type { InstanceEvent } from '../../core/types.ts';
import { ECHO_APP, alive, countChecks, echoService, recordEvents, request, servePlugins, sleep, waitFor } from '../helpers.ts';

/** Every lifecycle event, with the instance's consecutive health failures at the moment it was emitted. */
function recordWithFailures(kernel: Kernel): Array<InstanceEvent & { failures: number }> {
  return recordEvents(kernel, (event) => ({ failures: kernel.instances.getByKey(event.instance)?.consecutiveHealthFailures ?? -1 }));
}

const HOST = 'a.echo.localhost';

describe('health checks', { timeout: 120_000 }, () => {
  test('a service without a health path is checked over TCP and never restart-loops while it accepts', async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        settings: { healthInterval: '100ms' },
        services: { echo: { command: `node ${ECHO_APP}`, idleTimeout: false } },
      },
    });
    try {
      const events = recordWithFailures(kernel);
      const checks = countChecks(kernel, 'tcp');
      const instance = await kernel.spawnInstance('echo', 'a');
      assert.equal(instance.state, 'running');
      const pid = instance.handle!.pid!;
      const afterReady = checks.length;

      await sleep(1_500);
      assert.ok(checks.length - afterReady >= 3, `the monitor kept checking (${checks.length - afterReady} checks)`);
      assert.equal(instance.state, 'running');
      assert.equal(instance.restarts, 0);
      assert.equal(instance.handle?.pid, pid);
      assert.equal(instance.health, 'healthy');
      assert.equal(instance.consecutiveHealthFailures, 0);
      assert.deepEqual(
        events.filter((e) => ['unhealthy', 'restarting', 'failed', 'stopping'].includes(e.type)),
        [],
      );
      const reply = await request(kernel, HOST, '/pid');
      assert.equal(reply.status, 200);
      assert.equal(Number(reply.body), pid);
    } finally {
      await kernel.close();
    }
  });

  test('an HTTP health path failing `failures` times in a row restarts the instance', async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: {
          echo: echoService({
            idleTimeout: false,
            health: { path: '/health', interval: '100ms', failures: 3 },
            backoff: { base: '100ms' },
          }),
        },
      },
    });
    try {
      const events = recordWithFailures(kernel);
      const instance = await kernel.spawnInstance('echo', 'a');
      const pid = instance.handle!.pid!;
      const marker = path.join(kernel.instanceDir('echo', 'a'), 'unhealthy');
      // Healthy again once it has been declared unhealthy, so the restarted process passes its readiness check.
      kernel.hooks.stateChange.tap('test-heal', (event) => {
        if (event.type === 'unhealthy') rmSync(marker, { force: true });
      });
      writeFileSync(marker, '');

      await waitFor(
        () => instance.state === 'running' && instance.handle !== null && instance.handle.pid !== pid,
        'the restart of the unhealthy instance',
        30_000,
      );
      const mine = events.filter((e) => e.instance === 'echo:a');
      const unhealthy = mine.findIndex((e) => e.type === 'unhealthy');
      assert.ok(unhealthy >= 0, 'an unhealthy event');
      assert.match(mine[unhealthy]!.reason ?? '', /^3 failed checks, last: HTTP 500$/);
      assert.equal(mine[unhealthy]!.failures, 3, 'declared unhealthy at the third consecutive failure, not before');
      assert.deepEqual(
        mine.slice(unhealthy).map((e) => e.type),
        ['unhealthy', 'stopping', 'restarting', 'starting', 'spawned', 'ready'],
      );
      assert.match(mine[unhealthy + 2]!.reason ?? '', /^unhealthy: .*restarting in \d+ms$/);
      assert.equal(instance.restarts, 1);
      assert.ok(!alive(pid), 'the unhealthy process was stopped');
      assert.equal(instance.health, 'healthy');
      const reply = await request(kernel, HOST, '/pid');
      assert.equal(reply.status, 200);
      assert.equal(Number(reply.body), instance.handle!.pid);
    } finally {
      await kernel.close();
    }
  });

  test('readiness is the first passing check: a request during start-up waits for it and succeeds', async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: { echo: echoService({ idleTimeout: false, startupTimeout: '30s', health: { path: '/health', interval: '10s' } }) },
      },
    });
    try {
      const events = recordWithFailures(kernel);
      const checks = countChecks(kernel, 'http');
      const instance = kernel.createInstance('echo', 'a');
      // The app listens at once but answers its health path with 500 until the marker goes.
      const marker = path.join(kernel.instanceDir('echo', 'a'), 'unhealthy');
      mkdirSync(path.dirname(marker), { recursive: true });
      writeFileSync(marker, '');
      const starting = kernel.supervisor.start(instance, 'test');
      assert.equal(instance.state, 'starting');

      await waitFor(() => events.some((e) => e.type === 'spawned'), 'the process to be spawned', 30_000);
      let settled = false;
      const pending = request(kernel, HOST, '/pid', { timeoutMs: 60_000 }).finally(() => {
        settled = true;
      });
      const before = checks.length;
      await waitFor(() => checks.length >= before + 3, 'failing readiness checks', 30_000);
      assert.equal(instance.state, 'starting', 'not ready while its health path fails, though its port accepts');
      assert.equal(settled, false, 'the request waits');
      assert.equal(instance.inFlight, 0, 'and was not forwarded yet');

      const healedAt = Date.now();
      rmSync(marker);
      const reply = await pending;
      await starting;
      assert.equal(reply.status, 200);
      assert.equal(Number(reply.body), instance.handle!.pid);
      assert.equal(instance.state, 'running');
      const ready = events.find((e) => e.instance === 'echo:a' && e.type === 'ready');
      assert.ok(ready && ready.at >= healedAt, 'ready only after the health path passed');
      assert.equal(events.filter((e) => e.type === 'restarting' || e.type === 'failed').length, 0);
    } finally {
      await kernel.close();
    }
  });

  test('TCP readiness: a request to an instance that binds its port late waits instead of failing', async () => {
    const kernel = await createTestKernel({
      plugins: servePlugins,
      config: {
        services: {
          echo: { command: 'sh', args: ['-c', `sleep 0.8; exec node ${ECHO_APP}`], idleTimeout: false, startupTimeout: '30s' },
        },
      },
    });
    try {
      const events = recordWithFailures(kernel);
      const instance = kernel.createInstance('echo', 'a');
      const starting = kernel.supervisor.start(instance, 'test');
      await waitFor(() => events.some((e) => e.type === 'spawned'), 'the process to be spawned', 30_000);
      assert.equal(instance.state, 'starting');
      const reply = await request(kernel, HOST, '/pid', { timeoutMs: 60_000 });
      await starting;
      assert.equal(reply.status, 200, reply.body);
      assert.equal(Number(reply.body), instance.handle!.pid, 'sh exec-ed into the app: one pid');
      assert.ok(instance.readyAt! - instance.startedAt! >= 700, 'ready only once the port accepted');
    } finally {
      await kernel.close();
    }
  });
});
