// Alert webhooks (plugins/webhooks) in a test kernel, the rules: a bad alerts config is refused field by field, and
// each kind of rule (a metric threshold, restarts in a window, unhealthy, wake-failed, oom) fires once and resolves,
// at a real HTTP receiver on loopback.
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Gauge } from 'prom-client';
import { isTenementError } from '../../core/errors.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import webhooksPlugin from '../../plugins/webhooks/index.ts';
import processRuntime from '../../runtimes/process/index.ts';
import { definePlugin } from '../../sdk/index.ts';
import { ECHO_APP, request, servePlugins, sleep, waitFor } from '../helpers.ts';
import { projectDir } from '../security/serve-child.ts';
import { SECRET, crashApp, receiver } from './webhooks-fixture.ts';

describe('alert webhooks in a test kernel', { timeout: 180_000 }, () => {
  const plugins = [processRuntime, webhooksPlugin];

  test('a bad alerts config is refused with a coded error naming each field', async () => {
    const bad = async (alertsConfig: unknown): Promise<string> => {
      const error = await createTestKernel({ plugins, config: { settings: { alerts: alertsConfig } } as never, start: false }).then(
        async (kernel) => {
          await kernel.stop();
          return null;
        },
        (e: unknown) => e,
      );
      assert.ok(isTenementError(error), `refused: ${JSON.stringify(alertsConfig)}`);
      assert.equal(error.code, 'TNM_ERR_CONFIG_INVALID');
      return error.message;
    };
    assert.match(await bad({ webhooks: [{ name: 'ops', url: 'http://127.0.0.1:1/' }] }), /alerts\.webhooks\.0\.secret.*expected a secret for format 'generic'/s);
    assert.match(await bad({ webhooks: [{ name: 'ops', url: 'file:///etc/passwd', secret: SECRET }] }), /alerts\.webhooks\.0\.url.*http:\/\/ or https:\/\//s);
    assert.match(await bad({ webhooks: [{ name: '__proto__', url: 'http://127.0.0.1:1/', secret: SECRET }] }), /alerts\.webhooks\.0\.name/);
    assert.match(await bad({ webhooks: [{ name: 'ops', url: 'http://127.0.0.1:1/', secret: 'short' }] }), /at least 16 characters/);
    assert.match(await bad({ rules: [{ on: 'failed', webhooks: ['nope'] }] }), /alerts\.rules\.0\.webhooks.*unknown webhook 'nope'/s);
    assert.match(await bad({ rules: [{ on: 'failed' }, { on: 'failed' }] }), /alerts\.rules\.1\.name.*two rules are named 'failed'/s);
    assert.match(await bad({ rules: [{ on: 'crashed' }] }), /alerts\.rules\.0\.on.*expected a rule with on: 'failed'/s);
    assert.match(await bad({ rules: [{ on: 'restarts', count: 3 }] }), /alerts\.rules\.0\.within.*expected a window/s);
    assert.match(await bad({ rules: [{ metric: 'm', above: 1, below: 2 }] }), /exactly one of above or below/);
    assert.match(await bad({ rules: [{ metric: 'bad name' }] }), /alerts\.rules\.0\.metric.*Prometheus metric name/s);
    assert.match(await bad({ delivery: { backoff: { base: '1m', max: '1s' } } }), /base <= max/);
    assert.match(await bad({ delivery: { maxRows: 5 } }), /alerts\.delivery\.maxRows/);
    assert.match(await bad({ surprise: true }), /surprise/);
  });

  test('a metric rule fires once its threshold has been crossed for `for`, and resolves when the value is back', async (t) => {
    const hook = await receiver();
    let depth = 0;
    const gauge = definePlugin({
      name: 'test-gauge',
      version: '1.0.0',
      kernel: '^1',
      setup(ctx) {
        new Gauge({
          name: 'test_queue_depth',
          help: 'a gauge the test drives',
          labelNames: ['service', 'instance'],
          registers: [ctx.metrics],
          collect() {
            this.set({ service: 'notes', instance: 'alice' }, depth);
            this.set({ service: 'other', instance: 'bob' }, depth);
          },
        });
      },
    });
    const kernel = await createTestKernel({
      plugins: [...plugins, gauge],
      config: {
        settings: {
          alerts: {
            webhooks: [{ name: 'ops', url: hook.url, secret: SECRET }],
            rules: [{ name: 'deep-queue', metric: 'test_queue_depth', above: 10, for: '300ms', services: ['notes'] }],
            interval: '50ms',
          },
        },
      },
    });
    t.after(() => kernel.close());
    await sleep(300);
    assert.equal(hook.received.length, 0, 'nothing while under the threshold');
    const crossed = Date.now();
    depth = 50;
    await waitFor(() => hook.received.length >= 1, 'the firing alert', 30_000);
    assert.ok(Date.now() - crossed >= 300, 'not before `for` had passed');
    const firing = hook.received[0]!.body;
    assert.equal(firing.kind, 'firing');
    assert.equal(firing.rule, 'deep-queue');
    assert.equal(firing.instance, 'notes:alice', 'only the series of the rule\'s services');
    assert.deepEqual(firing.metric, { name: 'test_queue_depth', labels: { service: 'notes', instance: 'alice' }, value: 50, above: 10 });
    depth = 1;
    await waitFor(() => hook.received.length >= 2, 'the resolved alert', 30_000);
    assert.equal(hook.received[1]!.body.kind, 'resolved');
    assert.equal(hook.received[1]!.body.id, firing.id);
    await sleep(300);
    assert.equal(hook.received.length, 2);
  });

  test('restarts in a window: one alert to the webhooks the rule names, resolved once the window empties', async (t) => {
    const dir = projectDir('tenement-webhooks-restarts-');
    const app = crashApp(dir);
    const ops = await receiver();
    const other = await receiver();
    const kernel = await createTestKernel({
      plugins,
      config: {
        settings: {
          alerts: {
            webhooks: [
              { name: 'ops', url: ops.url, secret: SECRET },
              { name: 'other', url: other.url, secret: SECRET },
              { name: 'elsewhere', url: other.url, secret: SECRET, services: ['notes'] },
            ],
            rules: [{ on: 'restarts', count: 3, within: '1500ms', webhooks: ['ops', 'elsewhere'] }],
            interval: '50ms',
          },
        },
        services: { crashy: { command: `node ${app}`, maxRestarts: 4, backoff: { base: '20ms', max: '40ms' }, idleTimeout: false } },
      },
    });
    // One hook, closing before removing: the app writes into the folder (after-hooks stop at the first that throws).
    t.after(() => kernel.close().finally(() => rmSync(dir, { recursive: true, force: true })));
    await kernel.spawnInstance('crashy', 'a').catch(() => undefined);
    await waitFor(() => ops.received.length >= 2, 'firing then resolved', 30_000);
    const [firing, resolved] = ops.received;
    assert.equal(firing!.body.kind, 'firing');
    assert.match(String(firing!.body.summary), /crashy:a restarted 3 times within 1500ms/);
    assert.equal(resolved!.body.kind, 'resolved');
    assert.equal(resolved!.body.id, firing!.body.id);
    assert.equal(other.received.length, 0, "neither a webhook the rule does not name nor one for other services");
  });

  test('unhealthy for a duration: fires once the instance has not been healthy for `for`, resolves when it is', async (t) => {
    const hook = await receiver();
    const kernel = await createTestKernel({
      plugins: [...servePlugins, webhooksPlugin],
      config: {
        settings: {
          healthInterval: '100ms',
          alerts: { webhooks: [{ name: 'ops', url: hook.url, secret: SECRET }], rules: [{ on: 'unhealthy', for: '600ms' }], interval: '50ms' },
        },
        services: {
          echo: {
            command: `node ${ECHO_APP}`,
            idleTimeout: false,
            health: { path: '/health', failures: 2 },
            startupTimeout: '1s',
            maxRestarts: 100,
            backoff: { base: '50ms', max: '100ms' },
          },
        },
      },
    });
    t.after(() => kernel.close());
    const instance = await kernel.spawnInstance('echo', 'a');
    const marker = path.join(kernel.instanceDir('echo', 'a'), 'unhealthy');
    writeFileSync(marker, '');
    let unhealthyAt = 0;
    kernel.watchEvents((event) => {
      if (event.type === 'unhealthy' && unhealthyAt === 0) unhealthyAt = event.at;
    });
    await waitFor(() => hook.received.length >= 1, 'the unhealthy alert', 30_000);
    assert.ok(unhealthyAt > 0 && Date.now() - unhealthyAt >= 600, 'not before `for` had passed since the unhealthy notice');
    assert.equal(hook.received[0]!.body.kind, 'firing');
    assert.match(String(hook.received[0]!.body.summary), /echo:a has been unhealthy for/);
    rmSync(marker, { force: true });
    await waitFor(() => hook.received.length >= 2, 'the resolved alert', 30_000);
    assert.equal(hook.received[1]!.body.kind, 'resolved');
    assert.equal(instance.state, 'running');
    assert.equal(instance.health, 'healthy');
  });

  test('a wake that fails raises wake-failed, resolved once the instance runs again', async (t) => {
    const dir = projectDir('tenement-webhooks-wake-');
    const app = crashApp(dir);
    writeFileSync(path.join(dir, 'ok'), '');
    const hook = await receiver();
    const kernel = await createTestKernel({
      plugins: [...servePlugins, webhooksPlugin],
      config: {
        settings: { alerts: { webhooks: [{ name: 'ops', url: hook.url, secret: SECRET }], rules: [{ on: 'wake-failed' }], interval: '50ms' } },
        services: { crashy: { command: `node ${app}`, idleTimeout: false, maxRestarts: 1, backoff: { base: '20ms', max: '40ms' } } },
      },
    });
    // One hook, closing before removing: the app writes into the folder (after-hooks stop at the first that throws).
    t.after(() => kernel.close().finally(() => rmSync(dir, { recursive: true, force: true })));
    const instance = await kernel.spawnInstance('crashy', 'a');
    await kernel.hibernate(instance);
    rmSync(path.join(dir, 'ok'));
    const failed = await request(kernel, 'a.crashy.localhost', '/');
    assert.equal(failed.status, 503, failed.body);
    await waitFor(() => hook.received.length >= 1, 'the wake-failed alert', 30_000);
    assert.equal(hook.received[0]!.body.rule, 'wake-failed');
    assert.match(String(hook.received[0]!.body.summary), /crashy:a could not be woken/);
    writeFileSync(path.join(dir, 'ok'), '');
    await waitFor(() => instance.state === 'failed', 'the instance to give up', 30_000);
    await kernel.spawnInstance('crashy', 'a');
    await waitFor(() => hook.received.length >= 2, 'the resolved alert', 30_000);
    assert.match(String(hook.received[1]!.body.summary), /running again/);
    assert.equal(hook.received[1]!.body.kind, 'resolved');
    assert.equal(hook.received.length, 2);
  });

  test('oom: merged while OOM kills keep coming, resolved after a cool-down without one', async (t) => {
    const hook = await receiver();
    const kernel = await createTestKernel({
      plugins: [processRuntime, webhooksPlugin],
      config: {
        settings: { alerts: { webhooks: [{ name: 'ops', url: hook.url, secret: SECRET }], rules: [{ on: 'oom', cooldown: '700ms' }], interval: '50ms' } },
        services: { echo: { command: `node ${ECHO_APP}`, idleTimeout: false } },
      },
    });
    t.after(() => kernel.close());
    const instance = await kernel.spawnInstance('echo', 'a');
    // The notice the cgroups plugin emits when the kernel OOM-kills a process of the instance.
    kernel.emit(instance, 'oom', 'killed node (pid 1234)');
    await waitFor(() => hook.received.length >= 1, 'the oom alert', 30_000);
    kernel.emit(instance, 'oom', 'killed node (pid 1235)');
    await waitFor(() => hook.received.length >= 2, 'the resolved alert', 30_000);
    const [firing, resolved] = hook.received;
    assert.equal(firing!.body.kind, 'firing');
    assert.equal(firing!.body.detail, 'killed node (pid 1234)');
    assert.equal(resolved!.body.kind, 'resolved');
    assert.equal(resolved!.body.count, 2);
  });
});
