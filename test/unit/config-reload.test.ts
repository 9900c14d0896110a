// Kernel.reload and its diff (core/config-reload.ts) on a real kernel: which services count as added, removed and
// changed, which changes wait for a restart, prototype names as services, and a reload refused before anything
// changed when a service's tier has no runtime.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { diffConfig } from '../../core/config-reload.ts';
import { resolveConfig, type ResolvedConfig } from '../../core/config/loader.ts';
import type { ConfigInput } from '../../core/config/schema.ts';
import { ErrorCodes } from '../../core/errors.ts';
import { ECHO_APP, request, trackedKernel, waitFor } from '../helpers.ts';

const echo = { command: `node ${ECHO_APP}`, health: '/health', idleTimeout: false as const };
const resolve = (config: ConfigInput, dataDir = '/tmp/tenement-reload-unit'): ResolvedConfig =>
  resolveConfig({ ...config, settings: { port: 0, dataDir, ...config.settings } }, { path: null, dir: process.cwd() });

test('diffConfig: added, removed, changed (with the fields that wait for the next start) and restart-only changes', () => {
  const before = resolve({ services: { web: echo, old: echo, constructor: echo }, pluginOptions: {} });
  const after = resolve({
    settings: { domain: 'example.com' },
    services: { web: { ...echo, env: { A: '1' }, requestTimeout: '5s' }, constructor: echo, prototype: echo },
  });
  const diff = diffConfig(before, after);
  assert.deepEqual(diff.added, ['prototype']);
  assert.deepEqual(diff.removed, ['old']);
  assert.deepEqual(diff.changed, [{ service: 'web', fields: ['env', 'requestTimeout'], atNextStart: ['env'] }]);
  assert.deepEqual(diff.needsRestart, ['settings.domain']);
  assert.deepEqual(diffConfig(before, resolve({ services: { constructor: echo, old: echo, web: echo } })).changed, [], 'the order of keys is no change');
});

test('Kernel.reload: an added service is routed and started, a removed one 404s, a refused reload changes nothing', async (t) => {
  const { kernel } = await trackedKernel(t, { web: echo, gone: echo });
  await kernel.spawnInstance('web', 'alice');
  await kernel.spawnInstance('gone', 'bob');
  const dataDir = kernel.config.settings.dataDir;
  const base = kernel.config;

  // A tier no loaded runtime provides: refused before the service table moved.
  const bad = resolve({ services: { web: echo, gone: echo, vm: { ...echo, isolation: 'microvm' } } }, dataDir);
  await assert.rejects(kernel.reload(bad), (error: { code?: string }) => error.code === ErrorCodes.TIER_UNAVAILABLE);
  assert.equal(kernel.config, base);
  assert.equal((await request(kernel, 'bob.gone.localhost', '/pid')).status, 200);

  const next = resolve({ services: { web: echo, constructor: echo }, instances: { constructor: ['carol'] } }, dataDir);
  const diff = await kernel.reload(next);
  assert.deepEqual([diff.added, diff.removed], [['constructor'], ['gone']]);
  assert.equal(kernel.instances.get('gone', 'bob'), undefined);
  assert.equal((await request(kernel, 'bob.gone.localhost', '/')).status, 404);
  await waitFor(async () => (await request(kernel, 'carol.constructor.localhost', '/pid')).status === 200, 'the added service to answer', 20_000);
  assert.equal((await request(kernel, 'carol.hasownproperty.localhost', '/')).status, 404, 'a name that is no service is not looked up on the prototype');

  // Adding the removed service back brings its stored instance back.
  await kernel.reload(resolve({ services: { web: echo, constructor: echo, gone: echo } }, dataDir));
  await waitFor(async () => (await request(kernel, 'bob.gone.localhost', '/pid')).status === 200, 'the re-added service to answer', 20_000);
});
