import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestKernel } from '../../core/test-kernel.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { orderPlugins } from '../../core/plugin.ts';
import { definePlugin } from '../../sdk/index.ts';
import processRuntime from '../../runtimes/process/index.ts';
import router from '../../plugins/router/index.ts';

const plugin = (name: string, extra: Partial<Parameters<typeof definePlugin>[0]> = {}) =>
  definePlugin({ name, version: '1.0.0', kernel: '^1', setup() {}, ...extra });

function rejects(entries: unknown[], code: string, pattern: RegExp): void {
  assert.throws(
    () => orderPlugins(entries),
    (error: unknown) => {
      assert.ok(error instanceof TenementError, String(error));
      assert.equal(error.code, code);
      assert.match(error.message, pattern);
      assert.ok(error.plugin, 'the error names the plugin');
      assert.ok(error.hook, 'the error names the hook');
      return true;
    },
  );
}

test('plugins are ordered pre, normal, post, then after their dependencies', () => {
  const order = orderPlugins([
    plugin('late', { enforce: 'post' }),
    plugin('b', { dependencies: ['c'] }),
    plugin('c'),
    plugin('early', { enforce: 'pre' }),
    plugin('d', { dependencies: ['early'] }),
  ]).map((p) => p.definition.name);
  assert.deepEqual(order, ['early', 'c', 'b', 'd', 'late']);
});

test('a missing dependency names the plugin and what it needs', () => {
  rejects([plugin('hibernate', { dependencies: ['router'] })], ErrorCodes.PLUGIN_MISSING_DEPENDENCY, /'hibernate' depends on 'router'/);
});

test('a dependency that is set up later (post bucket) is refused', () => {
  rejects(
    [plugin('a', { dependencies: ['z'] }), plugin('z', { enforce: 'post' })],
    ErrorCodes.PLUGIN_MISSING_DEPENDENCY,
    /'a' depends on 'z'.*'post'/,
  );
});

test('a dependency cycle is refused', () => {
  rejects([plugin('a', { dependencies: ['b'] }), plugin('b', { dependencies: ['a'] })], ErrorCodes.PLUGIN_MISSING_DEPENDENCY, /cycle: .*a -> b -> a|b -> a -> b/);
});

test('a kernel version mismatch is refused', () => {
  rejects([plugin('future', { kernel: '^2' })], ErrorCodes.PLUGIN_KERNEL_VERSION, /'future' needs kernel \^2/);
});

test('a duplicate name is refused', () => {
  rejects([plugin('twice'), plugin('twice')], ErrorCodes.PLUGIN_DUPLICATE, /'twice' is registered twice/);
});

test('an invalid manifest says which field is wrong', () => {
  rejects([{ name: 'bad', version: 'one', kernel: '^1', setup() {} }], ErrorCodes.PLUGIN_MANIFEST, /'bad'.*version: expected a semver/);
  rejects([{ name: 'nosetup', version: '1.0.0', kernel: '^1' }], ErrorCodes.PLUGIN_MANIFEST, /setup/);
});

test('a throwing setup fails start-up with the plugin name and hook', async () => {
  await assert.rejects(
    createTestKernel({ plugins: [plugin('boom', { setup: () => { throw new Error('no database'); } })] }),
    (error: unknown) => {
      assert.ok(error instanceof TenementError);
      assert.equal(error.code, ErrorCodes.PLUGIN_SETUP);
      assert.equal(error.plugin, 'boom');
      assert.equal(error.hook, 'setup');
      assert.match(error.message, /'boom' failed in setup: no database/);
      return true;
    },
  );
});

test('plugins get options from [plugin, options] entries', async () => {
  let seen: unknown;
  const withOptions = definePlugin<{ greeting: string }>({
    name: 'opts', version: '1.0.0', kernel: '^1',
    setup(ctx) { seen = ctx.config; },
  });
  const kernel = await createTestKernel({ plugins: [[withOptions, { greeting: 'hi' }] as const] });
  await kernel.close();
  assert.deepEqual(seen, { greeting: 'hi' });
});

test('a tier no runtime provides fails start-up naming the service and tier', async () => {
  await assert.rejects(
    createTestKernel({
      plugins: [processRuntime, router],
      config: { services: { web: { command: 'node app.js', isolation: 'namespace' } } },
    }),
    (error: unknown) => {
      assert.ok(error instanceof TenementError);
      assert.equal(error.code, ErrorCodes.TIER_UNAVAILABLE);
      assert.match(error.message, /services\.web\.isolation: the 'namespace' tier is not provided .*available: process/);
      return true;
    },
  );
});

test('hook interceptors time every tap and wrap its errors with the plugin and hook names', async () => {
  const kernel = await createTestKernel({
    plugins: [
      plugin('first', {
        setup(ctx) {
          ctx.hooks.route.tap(async () => undefined);
        },
      }),
      plugin('broken', {
        setup(ctx) {
          ctx.hooks.route.tap(async () => {
            throw new Error('lookup table missing');
          });
        },
      }),
    ],
  });
  try {
    const info = { hostname: 'x.localhost', method: 'GET', url: '/', headers: {}, remoteAddress: '127.0.0.1', upgrade: false };
    await assert.rejects(kernel.hooks.route.promise(info), (error: unknown) => {
      assert.ok(error instanceof TenementError);
      assert.equal(error.code, ErrorCodes.HOOK_FAILED);
      assert.equal(error.plugin, 'broken');
      assert.equal(error.hook, 'route');
      assert.match(error.message, /plugin 'broken' failed in hook 'route': lookup table missing/);
      return true;
    });
    assert.equal(kernel.timings.byTap.get('route/first')?.calls, 1);
    assert.equal(kernel.timings.byTap.get('route/broken')?.errors, 1);
    // The management surface answers a hook failure with a coded JSON error rather than crashing.
    const res = await fetch(`${kernel.url}/`, { headers: { host: 'x.localhost' } });
    assert.equal(res.status, 500);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, ErrorCodes.HOOK_FAILED);
  } finally {
    await kernel.close();
  }
});

test('every lifecycle transition is emitted on stateChange', async () => {
  const kernel = await createTestKernel({ plugins: [processRuntime], config: { services: { a: { command: 'x' } } } });
  try {
    const events: string[] = [];
    kernel.hooks.stateChange.tap('test', (event) => {
      events.push(`${event.type}:${event.from}->${event.to}`);
    });
    const instance = kernel.createInstance('a', 'one');
    kernel.instances.transition(instance, 'hibernated', 'hibernated');
    kernel.instances.transition(instance, 'waking', 'waking');
    assert.throws(() => kernel.instances.transition(instance, 'created', 'created'), /cannot go from waking to created/);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(events, ['created:created->created', 'hibernated:created->hibernated', 'waking:hibernated->waking']);
  } finally {
    await kernel.close();
  }
});

test('pluginOptions configure plugins by name, and an unknown name is an error', async () => {
  let seen: unknown;
  const configurable = definePlugin<{ level: number } | undefined>({
    name: 'configurable', version: '1.0.0', kernel: '^1',
    setup(ctx) { seen = ctx.config; },
  });
  const kernel = await createTestKernel({ plugins: [configurable], config: { pluginOptions: { configurable: { level: 3 } } } });
  await kernel.close();
  assert.deepEqual(seen, { level: 3 });
  await assert.rejects(
    createTestKernel({ plugins: [configurable], config: { pluginOptions: { nosuch: {} } } }),
    /pluginOptions\.nosuch: no plugin named 'nosuch' is loaded \(loaded: configurable\)/,
  );
});

test('ctx.hooks taps sync and async hooks alike, named after the plugin, staged by enforce or by its option', async () => {
  const seen: string[] = [];
  const early = definePlugin({
    name: 'early',
    version: '1.0.0',
    kernel: '^1',
    enforce: 'pre',
    setup(ctx) {
      // SyncHooks (metrics, stateChange, log, request) have promise() too, but refuse tapPromise.
      ctx.hooks.metrics.tap(() => void seen.push('metrics'));
      ctx.hooks.stateChange.tap((event) => void seen.push(`stateChange:${event.type}`));
      ctx.hooks.log.tap(() => undefined);
      ctx.hooks.request.tap(() => undefined);
      ctx.hooks.route.tap(async () => undefined);
      ctx.hooks.describe.tap(() => undefined, { stage: 7 });
      ctx.hooks.spawn.for('process').tap(async () => undefined);
    },
  });
  const late = plugin('late', { enforce: 'post', setup: (ctx) => ctx.hooks.route.tap(() => undefined) });
  const kernel = await createTestKernel({ plugins: [late, early], config: { services: { a: { command: 'x' } } } });
  try {
    kernel.createInstance('a', 'one');
    assert.deepEqual(seen, ['metrics', 'stateChange:created']);
    assert.deepEqual(kernel.hooks.route.taps.map((t) => [t.name, t.stage]), [['early', -100], ['late', 100]]);
    assert.deepEqual(kernel.hooks.describe.taps.map((t) => [t.name, t.stage]), [['early', 7]]);
    assert.deepEqual(kernel.hooks.spawn.get('process')?.taps.map((t) => t.name), ['early']);
    assert.deepEqual([...kernel.timings.byTap.keys()].filter((k) => k.endsWith('/early')).sort(), [
      'describe/early', 'log/early', 'metrics/early', 'request/early', 'route/early', 'spawn:process/early', 'stateChange/early',
    ]);
  } finally {
    await kernel.close();
  }
});
