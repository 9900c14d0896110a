// Tier fallback: a service asks for a tier the host cannot run and names one that works instead.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import namespaceRuntime from '../../runtimes/namespace/index.ts';
import sandboxRuntime from '../../runtimes/sandbox/index.ts';
import { ECHO_APP, request, servePlugins, waitFor } from '../helpers.ts';

/** Runs `work` with PATH emptied, so the namespace runtime finds no bwrap: a host without bubblewrap. */
async function withoutPath<T>(work: () => Promise<T>): Promise<T> {
  const saved = process.env.PATH;
  process.env.PATH = '';
  try {
    return await work();
  } finally {
    process.env.PATH = saved;
  }
}

test('a tier the host cannot run falls back to the next one named, and says so', { timeout: 60_000 }, async (t) => {
  const kernel = await withoutPath(() =>
    createTestKernel({
      plugins: [...servePlugins, namespaceRuntime],
      config: {
        services: {
          web: { command: process.execPath, args: [ECHO_APP], health: '/health', isolation: 'namespace', fallback: ['process'] },
        },
      },
    }),
  );
  t.after(() => kernel.close());
  const reasons: string[] = [];
  kernel.hooks.stateChange.tap('test', (event) => {
    if (event.type === 'spawned') reasons.push(event.reason ?? '');
  });
  assert.deepEqual(kernel.tierOf('web').tier, 'process');
  assert.match(kernel.tierOf('web').fallbackReason ?? '', /namespace: .*apt-get install bubblewrap/);
  const instance = await kernel.spawnInstance('web', 'a');
  await waitFor(() => instance.state === 'running', 'the instance to run');
  assert.equal(instance.toJSON().tier, 'process');
  assert.match(reasons[0] ?? '', /tier process, a fallback \(namespace: .*bubblewrap/);
  assert.equal((await request(kernel, 'a.web.localhost', '/pid')).status, 200);
});

test('without a fallback the tier is kept and its spawns fail with the reason and the fix', { timeout: 60_000 }, async (t) => {
  const kernel = await withoutPath(() =>
    createTestKernel({
      plugins: [...servePlugins, namespaceRuntime],
      config: { services: { web: { command: process.execPath, args: [ECHO_APP], isolation: 'namespace', restart: 'never' } } },
    }),
  );
  t.after(() => kernel.close());
  assert.equal(kernel.tierOf('web').tier, 'namespace');
  const saved = process.env.PATH;
  process.env.PATH = '';
  try {
    const instance = await kernel.spawnInstance('web', 'a');
    assert.equal(instance.state, 'failed');
    assert.match(instance.lastError ?? '', /bubblewrap/);
  } finally {
    process.env.PATH = saved;
  }
});

test('a tier with no runtime at all, and no fallback with one, stops start-up', { timeout: 60_000 }, async () => {
  await assert.rejects(
    createTestKernel({ plugins: servePlugins, config: { services: { web: { command: 'x', isolation: 'microvm', fallback: ['sandbox'] } } } }),
    /services\.web\.isolation: the 'microvm' tier is not provided by any loaded runtime/,
  );
});

test('a config pointing the sandbox tier at a missing runsc falls back, naming the binary and the package', { timeout: 60_000 }, async (t) => {
  const kernel = await createTestKernel({
    plugins: [...servePlugins, sandboxRuntime],
    config: {
      services: {
        web: { command: process.execPath, args: [ECHO_APP], health: '/health', isolation: 'sandbox', fallback: ['process'] },
        strict: { command: process.execPath, args: [ECHO_APP], isolation: 'sandbox', restart: 'never' },
      },
      pluginOptions: { 'runtime-sandbox': { runsc: '/nonexistent/bin/runsc' } },
    },
  });
  t.after(() => kernel.close());
  assert.equal(kernel.tierOf('web').tier, 'process');
  assert.match(kernel.tierOf('web').fallbackReason ?? '', /sandbox: .*\/nonexistent\/bin\/runsc.*apt-get install runsc/);
  const instance = await kernel.spawnInstance('web', 'a');
  await waitFor(() => instance.state === 'running', 'the fallback instance to run');
  assert.equal(instance.toJSON().tier, 'process');
  // Without a fallback the spawn fails with the same reason, and nothing is started.
  const strict = await kernel.spawnInstance('strict', 'b');
  assert.equal(strict.state, 'failed');
  assert.match(strict.lastError ?? '', /runsc/);
});
