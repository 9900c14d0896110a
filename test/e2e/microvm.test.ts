// The microvm tier end to end: the probe app in a QEMU microVM (emulated here: TCG), behind a real kernel.
// TCG boots take seconds, so the tests are few and each boot is used for several assertions.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import { requireGuest } from '../../runtimes/microvm/availability.ts';
import { DATA_IMAGE } from '../../runtimes/microvm/data-image.ts';
import { detectHypervisor } from '../../runtimes/microvm/hypervisor.ts';
import { prepareGuest } from '../../runtimes/microvm/prepare.ts';
import microvmRuntime from '../../runtimes/microvm/index.ts';
import cgroups, { cgroupScope } from '../../plugins/cgroups/index.ts';
import { detectCgroups, missingFor } from '../../plugins/cgroups/detect.ts';
import { getJson, recordEvents, request, servePlugins, waitFor } from '../helpers.ts';
import { PROBE_APP, probeService, type Probe } from '../probe.ts';

// One prepared guest shared by every run (CI prepares it on first use, from the Debian mirror).
process.env.TENEMENT_MICROVM_DIR ??= path.join(os.tmpdir(), 'tenement-microvm-guest');
const GUEST_DIR = process.env.TENEMENT_MICROVM_DIR;
const hypervisor = detectHypervisor();
const skip = hypervisor.qemu ? false : 'needs qemu-system-x86_64 (apt-get install qemu-system-x86)';
const plugins = [...servePlugins, microvmRuntime];
const cgroupHost = detectCgroups();
const cgroupsMissing = missingFor(cgroupHost, ['memory', 'cpu']);

function microvmProbe(overrides: Partial<ServiceInput> = {}): ServiceInput {
  // Generous start-up: an emulated boot plus Node's start takes 5-15 s, more on a loaded machine.
  return probeService({ isolation: 'microvm', startupTimeout: '120s', ...overrides });
}

/** QEMU processes started for this instance (their command line names its data image). */
function qemuProcessesOf(dataDir: string): number[] {
  const image = path.join(dataDir, DATA_IMAGE);
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'latin1');
        return cmdline.includes('qemu-system') && cmdline.includes(image);
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** A TCP listener on the host's loopback, standing for a local service a tenant should not reach. */
async function loopbackService(t: { after(fn: () => void): void }): Promise<number> {
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined); // a reset by the guest's probe is not a failure
    socket.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  return (server.address() as net.AddressInfo).port;
}

describe('microvm tier', { timeout: 600_000, skip }, () => {
  before(() => {
    try {
      requireGuest(GUEST_DIR, hypervisor);
    } catch {
      // Not prepared (or for another node binary): prepare it now, as `ten microvm prepare` would.
      prepareGuest(GUEST_DIR, { log: (line) => console.log(`# microvm prepare: ${line}`) });
    }
  });

  test('the app runs in its own kernel as a non-root uid, serves over the proxy, keeps DATA_DIR across a restart, and stop leaves no QEMU', async (t) => {
    // With the cgroups plugin (where the host has them): limits.memory bounds QEMU as a whole, guest RAM fits under it.
    const withCgroups = !cgroupsMissing;
    const kernel = await createTestKernel({
      plugins: withCgroups ? [...plugins, cgroups] : plugins,
      config: { services: { probe: microvmProbe(withCgroups ? { limits: { memory: '640MiB', cpu: 1 } } : {}) } },
    });
    t.after(() => kernel.close());
    const instance = await kernel.spawnInstance('probe', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    const dataDir = kernel.instanceDir('probe', 'a');

    const { release } = await getJson<{ release: string }>(kernel, 'a.probe.localhost', '/kernel');
    assert.notEqual(release, os.release(), "the guest runs its own kernel, not the host's");
    assert.match(release, /cloud-amd64/);
    // Inside the guest, pid 1 is its root init: a root-only file of it, a signal to it and a mount must all fail.
    const probe = await getJson<Probe>(kernel, 'a.probe.localhost', '/probe?read=/proc/1/environ&kill=1');
    assert.notEqual(probe.uid, 0, 'the guest init drops to an unprivileged uid');
    assert.equal(probe.read?.ok, false, 'a root-only file is not readable');
    assert.equal(probe.kill?.ok, false, 'a process it does not own cannot be signalled');
    assert.equal(probe.mount.ok, false, 'mount fails');
    assert.equal(probe.capEff, '0000000000000000', 'no capabilities');
    assert.equal(probe.env.DATA_DIR, dataDir);
    assert.equal(probe.env.PORT, String(instance.port));
    assert.equal(probe.writable['/usr']?.ok, false, 'the host tools are read-only');
    assert.equal(probe.writable.dataDir?.ok, true, 'DATA_DIR is writable');
    const logs = instance.logs.query({}).map((line) => line.line).join('\n');
    if (hypervisor.accel === 'tcg') assert.match(logs, /emulated \(QEMU TCG/, 'the instance log says it is emulated');
    const [qemu] = qemuProcessesOf(dataDir);
    assert.ok(qemu, 'a QEMU process runs for the instance');
    if (withCgroups) {
      const memoryCgroup = path.join(cgroupHost.roots.memory!, cgroupScope(kernel.config.settings.dataDir), 'probe', 'a');
      assert.ok(readFileSync(path.join(memoryCgroup, 'cgroup.procs'), 'utf8').split('\n').includes(String(qemu)), 'QEMU runs in the instance memory cgroup');
      const limitFile = cgroupHost.version === 1 ? 'memory.limit_in_bytes' : 'memory.max';
      assert.equal(readFileSync(path.join(memoryCgroup, limitFile), 'utf8').trim(), String(640 * 1024 * 1024), 'limits.memory bounds the VM as a whole');
      const args = readFileSync(`/proc/${qemu}/cmdline`, 'latin1').split('\0');
      assert.equal(args[args.indexOf('-m') + 1], '512', 'guest RAM is the limit minus QEMU\'s own 128 MiB');
    }
    if (process.getuid?.() === 0) {
      const uid = /^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${qemu}/status`, 'utf8'))?.[1];
      assert.notEqual(uid, '0', 'QEMU itself does not run as root');
    }

    // Documented (docs/microvm.md): on the host network, QEMU's 10.0.2.2 is the host's loopback.
    const local = await loopbackService(t);
    assert.deepEqual(await getJson(kernel, 'a.probe.localhost', `/connect?host=10.0.2.2&port=${local}`), { ok: true });

    assert.equal((await request(kernel, 'a.probe.localhost', `/write?path=${dataDir}/kept`)).status, 200);
    // A crash: the app exits 3 inside the guest, the guest reports it and powers off, the policy boots it again.
    const events = recordEvents(kernel);
    const pidBefore = instance.handle!.pid;
    await request(kernel, 'a.probe.localhost', '/exit?code=3');
    await waitFor(() => instance.state === 'running' && instance.handle?.pid !== pidBefore, 'the crashed VM to be restarted', 180_000);
    assert.ok(events.some((e) => e.type === 'restarting' && /exited with code 3/.test(e.reason ?? '')), "the app's own exit status is reported, not QEMU's");
    assert.deepEqual(await getJson(kernel, 'a.probe.localhost', `/exists?path=${dataDir}/kept`), { exists: true }, 'DATA_DIR survives a restart');

    // Hibernate frees the VM; the next request boots it again and waits for it.
    await kernel.hibernate(instance);
    assert.equal(instance.state, 'hibernated');
    await waitFor(() => qemuProcessesOf(dataDir).length === 0, 'no QEMU process while hibernated', 15_000);
    assert.deepEqual(await getJson(kernel, 'a.probe.localhost', `/exists?path=${dataDir}/kept`, { timeoutMs: 180_000 }), { exists: true }, 'a request wakes it');
    const onHost = spawnSync('debugfs', ['-R', 'cat /kept', path.join(dataDir, DATA_IMAGE)], { encoding: 'utf8' });
    if (onHost.status === 0) assert.equal(onHost.stdout, 'probe', 'the data lives in the image in DATA_DIR on the host');

    await kernel.removeInstance(instance);
    await waitFor(() => qemuProcessesOf(dataDir).length === 0, 'no QEMU process of the stopped instance', 15_000);
    assert.deepEqual(readdirSync(path.join(GUEST_DIR, 'run')).filter((entry) => entry.startsWith('probe-a-')), [], 'per-run files are removed');
  });

  test("network 'private' without the network plugin: the forwarded port works, the host's loopback does not", async (t) => {
    const kernel = await createTestKernel({ plugins, config: { services: { probe: microvmProbe({ network: 'private' }) } } });
    t.after(() => kernel.close());
    const instance = await kernel.spawnInstance('probe', 'a');
    const why = () => [instance.lastError ?? '', ...instance.logs.query({ limit: 15 }).map((entry) => entry.line)].join('\n');
    assert.equal(instance.state, 'running', why());
    const local = await loopbackService(t);
    const attempt = await getJson<{ ok: boolean }>(kernel, 'a.probe.localhost', `/connect?host=10.0.2.2&port=${local}`);
    assert.equal(attempt.ok, false, "QEMU's restrict=on cuts the guest off from the host");
  });

  test("an app in a folder the tools image mirrors (beside node's own, like /opt/app with node in /opt/node) starts", async (t) => {
    // The guest links the tools image's top-level folders into / read-only: the app's folder must still be made there.
    const top = `/${realpathSync(process.execPath).split('/')[1]}`;
    const appDir = mkdtempSync(path.join(top, 'tenement-microvm-app-'));
    copyFileSync(PROBE_APP, path.join(appDir, 'probe-app.mjs'));
    const kernel = await createTestKernel({ plugins, config: { services: { probe: microvmProbe({ cwd: appDir, command: 'node probe-app.mjs' }) } } });
    t.after(() => kernel.close().finally(() => rmSync(appDir, { recursive: true, force: true })));
    const instance = await kernel.spawnInstance('probe', 'a');
    const why = () => [instance.lastError ?? '', ...instance.logs.query({ limit: 15 }).map((entry) => entry.line)].join('\n');
    assert.equal(instance.state, 'running', why());
    assert.equal((await request(kernel, 'a.probe.localhost', '/health')).status, 200);
  });

  test('without a prepared guest the spawn fails with TNM_ERR_TIER_UNAVAILABLE naming the prepare command', async (t) => {
    const empty = mkdtempSync(path.join(os.tmpdir(), 'tenement-microvm-empty-'));
    const saved = process.env.TENEMENT_MICROVM_DIR;
    process.env.TENEMENT_MICROVM_DIR = empty;
    t.after(() => {
      process.env.TENEMENT_MICROVM_DIR = saved;
    });
    const kernel = await createTestKernel({ plugins, config: { services: { probe: microvmProbe({ restart: 'never' }) } } });
    // One hook, closing before removing (after-hooks stop at the first that throws).
    t.after(() => kernel.close().finally(() => rmSync(empty, { recursive: true, force: true })));
    const probe = await kernel.hooks.probe.get('microvm')!.promise();
    assert.equal(probe?.available, false);
    assert.match(probe?.reason ?? '', /ten microvm prepare/);
    const instance = await kernel.spawnInstance('probe', 'a');
    assert.notEqual(instance.state, 'running');
    assert.match(instance.lastError ?? '', /TNM_ERR_TIER_UNAVAILABLE|not prepared/);
    assert.match(instance.lastError ?? '', /ten microvm prepare/);
  });

  test('limits.pids is refused, not silently applied to QEMU\'s threads', async (t) => {
    const kernel = await createTestKernel({ plugins, config: { services: { probe: microvmProbe({ restart: 'never', limits: { pids: 64 } }) } } });
    t.after(() => kernel.close());
    const instance = await kernel.spawnInstance('probe', 'a');
    assert.equal(instance.state, 'failed');
    assert.match(instance.lastError ?? '', /services\.probe\.limits\.pids is not enforced inside a microVM guest/);
    assert.deepEqual(qemuProcessesOf(kernel.instanceDir('probe', 'a')), [], 'no VM was started');
  });
});
