// The namespace tier end to end: the probe app under bwrap, behind a real kernel, reporting what it sees.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import namespaceRuntime from '../../runtimes/namespace/index.ts';
import { getJson, onPath, recordEvents, request, servePlugins, waitFor } from '../helpers.ts';
import { assertConfined, assertTierUnavailable, probeService, type Probe } from '../probe.ts';

const skip = onPath('bwrap') ? false : 'needs bwrap (apt-get install bubblewrap)';
const plugins = [...servePlugins, namespaceRuntime];

const namespaceProbe = (overrides: Partial<ServiceInput> = {}): ServiceInput => probeService({ isolation: 'namespace', ...overrides });

/** Host pids of the processes whose environment names this DATA_DIR (bwrap, the app and its children). */
function processesOf(dataDir: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(`DATA_DIR=${dataDir}`)) found.push(Number(entry));
    } catch {
      // Gone, or not ours to read.
    }
  }
  return found;
}

describe('namespace tier', { timeout: 120_000, skip }, () => {
  test('a tenant sees only itself: pids, hostname, uid, capabilities, file system, signals, mount, env', async (t) => {
    process.env.TENEMENT_TEST_SECRET = 'do-not-leak';
    t.after(() => delete process.env.TENEMENT_TEST_SECRET);
    const secretDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-secret-'));
    const secret = path.join(secretDir, 'root-only');
    writeFileSync(secret, 'secret');
    chmodSync(secret, 0o600);

    const kernel = await createTestKernel({ plugins, config: { services: { probe: namespaceProbe() } } });
    // One hook, closing before removing (after-hooks stop at the first that throws).
    t.after(() => kernel.close().finally(() => rmSync(secretDir, { recursive: true, force: true })));
    const instance = await kernel.spawnInstance('probe', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');

    const probe = await getJson<Probe>(kernel, 'a.probe.localhost', `/probe?read=${encodeURIComponent(secret)}&kill=${process.pid}`);
    assert.ok(probe.pids.length <= 6, `only the sandbox's own processes are visible: ${probe.pids.join(' ')}`);
    assert.ok(probe.pids.includes(1), 'bwrap is pid 1 of its own pid namespace');
    assertConfined(probe);
    assert.equal(probe.read?.ok, false, 'a root-only host file cannot be read');
    assert.ok(['EPERM', 'ESRCH'].includes(probe.kill?.code ?? ''), String(probe.kill?.code));
    assert.equal(probe.env.DATA_DIR, kernel.instanceDir('probe', 'a'));
    assert.equal(probe.env.HOME, probe.env.DATA_DIR);
    assert.equal(probe.env.PORT, String(instance.port));

    const stats = await instance.handle!.stats();
    assert.ok((stats.memoryBytes ?? 0) > 0, 'stats cover the sandbox');
    assert.equal(await instance.handle!.ownsAddress!(), true, 'the listener is recognised as the sandbox');
  });

  test("tenants do not see each other's /tmp or DATA_DIR", async (t) => {
    const kernel = await createTestKernel({ plugins, config: { services: { probe: namespaceProbe() } } });
    t.after(() => kernel.close());
    await kernel.spawnInstance('probe', 'a');
    await kernel.spawnInstance('probe', 'b');
    const aData = kernel.instanceDir('probe', 'a');

    assert.equal((await request(kernel, 'a.probe.localhost', '/write?path=/tmp/from-a')).status, 200);
    assert.equal((await request(kernel, 'a.probe.localhost', `/write?path=${aData}/mine`)).status, 200);
    assert.deepEqual(await getJson(kernel, 'a.probe.localhost', '/exists?path=/tmp/from-a'), { exists: true });
    assert.deepEqual(await getJson(kernel, 'b.probe.localhost', '/exists?path=/tmp/from-a'), { exists: false });
    assert.deepEqual(await getJson(kernel, 'b.probe.localhost', `/exists?path=${aData}/mine`), { exists: false });
    assert.deepEqual(await getJson(kernel, 'b.probe.localhost', `/exists?path=${path.join(kernel.config.settings.dataDir, 'tenement.db')}`), {
      exists: false,
    });
    assert.equal((await request(kernel, 'b.probe.localhost', `/write?path=${aData}/theirs`)).status, 500);
    assert.equal(readFileSync(path.join(aData, 'mine'), 'utf8'), 'probe', "the file lands in a's DATA_DIR on the host");
  });

  test('hibernate, wake, crash-restart and stop leave no process behind', async (t) => {
    const kernel = await createTestKernel({ plugins, config: { services: { probe: namespaceProbe({ idleTimeout: '300ms', backoff: { base: 50 } }) } } });
    t.after(() => kernel.close());
    const instance = await kernel.spawnInstance('probe', 'a');
    const dataDir = kernel.instanceDir('probe', 'a');
    assert.equal((await request(kernel, 'a.probe.localhost', '/spawn-child')).status, 200);
    assert.ok(processesOf(dataDir).length >= 3, 'bwrap, the app and its child run');

    await waitFor(() => instance.state === 'hibernated', 'the idle sandbox to hibernate', 20_000);
    await waitFor(() => processesOf(dataDir).length === 0, 'no process of the hibernated sandbox', 10_000);

    const woken = await getJson<Probe>(kernel, 'a.probe.localhost', '/probe');
    assert.equal(woken.hostname, 'a-probe');
    assert.ok(processesOf(dataDir).length >= 2, 'a wake starts the sandbox again');
    // A crash: the app exits 3 inside the sandbox; bwrap ends with it, the policy starts a new sandbox.
    const events = recordEvents(kernel);
    const pidBefore = instance.handle!.pid;
    await request(kernel, 'a.probe.localhost', '/exit?code=3');
    await waitFor(() => instance.state === 'running' && instance.handle?.pid !== pidBefore, 'the crashed sandbox to be restarted', 20_000);
    assert.ok(events.some((e) => e.type === 'restarting' && /exited with code 3/.test(e.reason ?? '')), 'the crash is reported with its status');
    assert.equal((await getJson<Probe>(kernel, 'a.probe.localhost', '/probe')).hostname, 'a-probe');

    await request(kernel, 'a.probe.localhost', '/spawn-child');
    await kernel.removeInstance(instance);
    await waitFor(() => processesOf(dataDir).length === 0, 'no process of the stopped sandbox', 10_000);
  });

  test('without bwrap on PATH the spawn fails with TNM_ERR_TIER_UNAVAILABLE naming the package', async (t) => {
    const kernel = await createTestKernel({ plugins, config: { services: { probe: namespaceProbe() } } });
    t.after(() => kernel.close());
    const savedPath = process.env.PATH;
    process.env.PATH = '/nonexistent';
    t.after(() => {
      process.env.PATH = savedPath;
    });
    await assertTierUnavailable(kernel, 'namespace', /apt-get install bubblewrap/);
  });
});
