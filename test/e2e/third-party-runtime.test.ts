/**
 * A third-party runtime (examples/runtime-unshare) loaded from a tenement.config.ts through `plugins: [...]`:
 * its tier and its service field are accepted because it is loaded, an instance on it serves (from its own pid
 * namespace), hibernates when idle and wakes on a request; without the plugin the same config fails naming the
 * field.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../../core/config/loader.ts';
import { TenementError } from '../../core/errors.ts';
import { Kernel } from '../../core/kernel.ts';
import { createLogger } from '../../core/logger.ts';
import { SYSTEM_PATH, findProgram } from '../../core/process/tenant-launch.ts';
import { ECHO_APP, ROOT, gone, request, servePlugins, waitFor } from '../helpers.ts';

const RUNTIME = path.join(ROOT, 'examples', 'runtime-unshare', 'index.ts');
const skip =
  process.getuid?.() !== 0
    ? 'the unshare tier needs root (mount and pid namespaces without a user namespace)'
    : findProgram('unshare', SYSTEM_PATH, '/') === null
      ? 'unshare (util-linux) is not installed'
      : false;

/** A config file in a fresh folder; `withPlugin: false` leaves the runtime out of `plugins`. */
function writeConfig(dir: string, withPlugin: boolean): string {
  const file = path.join(dir, 'tenement.config.ts');
  writeFileSync(
    file,
    `import { defineConfig } from ${JSON.stringify(path.join(ROOT, 'sdk', 'index.ts'))};
${withPlugin ? `import unshareRuntime from ${JSON.stringify(RUNTIME)};` : ''}
export default defineConfig({
  settings: { dataDir: ${JSON.stringify(path.join(dir, 'data'))}, port: 0 },
  ${withPlugin ? 'plugins: [unshareRuntime],' : ''}
  services: {
    echo: { command: ${JSON.stringify(`node ${ECHO_APP}`)}, isolation: 'unshare', unshare: { uts: false }, idleTimeout: '500ms', health: '/health' },
  },
  instances: { echo: ['a'] },
});
`,
  );
  return file;
}

// The router, health checks and hibernation of `ten serve`, without its first-party runtimes: the only tier
// that can run `echo` is the config's own plugin's.
const PLUGINS = servePlugins.filter((plugin) => !('name' in plugin && plugin.name === 'runtime-process'));

describe('a third-party runtime from the config', { timeout: 120_000 }, () => {
  test("isolation: 'unshare' loads with the plugin; an instance serves from its own pid namespace, hibernates and wakes", { skip }, async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-unshare-'));
    // The tenant uid walks through it to its DATA_DIR (mkdtemp makes it 0700).
    chmodSync(dir, 0o711);
    const config = await loadConfig({ file: writeConfig(dir, true), plugins: PLUGINS });
    const service = config.services.echo!;
    assert.equal(service.isolation, 'unshare');
    assert.deepEqual((service as { unshare?: unknown }).unshare, { ipc: true, uts: false }, 'the plugin field, with its defaults');

    const kernel = new Kernel({ config, plugins: PLUGINS, logger: createLogger(process.env.TENEMENT_LOG_LEVEL ?? 'silent') });
    // One hook, stopping before removing: the kernel writes into the folder (after-hooks stop at the first that throws).
    t.after(() => kernel.stop().finally(() => rmSync(dir, { recursive: true, force: true })));
    await kernel.start();
    assert.ok(kernel.plugins.includes('runtime-unshare'));
    assert.equal(kernel.tierOf('echo').tier, 'unshare');
    assert.equal(kernel.tierTraits('unshare').cgroups, 'limits', 'traits declared from the definition');

    const host = 'a.echo.localhost';
    await waitFor(() => kernel.instances.get('echo', 'a')?.state === 'running', 'the instance listed in `instances` to start', 30_000);
    const first = await request(kernel, host, '/pid');
    assert.equal(first.status, 200, first.body);
    // pid 1 of the namespace is the runtime's init shell; the app is 2. On the host it has another pid.
    assert.equal(first.body.trim(), '2', 'the app runs in a pid namespace of its own');
    const instance = kernel.instances.get('echo', 'a')!;
    const hostPid = instance.toJSON().pid!;
    assert.ok(hostPid > 2);

    await waitFor(() => instance.state === 'hibernated', 'the idle instance to hibernate', 30_000);
    await waitFor(() => gone(hostPid), `the hibernated instance's process ${hostPid} to be gone`, 10_000);

    const second = await request(kernel, host, '/pid');
    assert.equal(second.status, 200, second.body);
    assert.equal(second.body.trim(), '2');
    assert.equal(instance.state, 'running');
    assert.notEqual(instance.toJSON().pid, hostPid, 'woken on a new process');
  });

  test('the same config without the plugin fails naming the tier field and the plugin field', async (t) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-unshare-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    await assert.rejects(loadConfig({ file: writeConfig(dir, false), plugins: PLUGINS }), (error: unknown) => {
      assert.ok(error instanceof TenementError);
      assert.equal(error.code, 'TNM_ERR_CONFIG_INVALID');
      assert.match(error.message, /services\.echo\.isolation: unknown tier 'unshare': expected one of /);
      assert.match(error.message, /services\.echo: Unrecognized key: "unshare"/);
      return true;
    });
  });

  test("the example's own tenement.config.ts loads (its plugin brings the tier and the field)", async () => {
    const config = await loadConfig({ file: path.join(ROOT, 'examples', 'runtime-unshare', 'tenement.config.ts') });
    assert.equal(config.services.notes!.isolation, 'unshare');
    assert.deepEqual((config.services.notes as { unshare?: unknown }).unshare, { ipc: true, uts: true });
  });
});
