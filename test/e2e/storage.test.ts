// Storage limits end to end (plugins/storage): real loop-mounted ext4 images under real instances, ENOSPC at the
// limit, usage in the API and metrics, the warning event, mounts across a restart, removal and retention via gc.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import { configSchema, type ConfigInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import type { InstanceEvent, SpawnSpec } from '../../core/types.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import storage from '../../plugins/storage/index.ts';
import { pointAtMount } from '../../plugins/storage/link-blind.ts';
import { mountsUnder as pluginMountsUnder, readMounts } from '../../plugins/storage/mountinfo.ts';
import type { StorageUsage } from '../../plugins/storage/usage.ts';
import namespaceRuntime from '../../runtimes/namespace/index.ts';
import sandboxRuntime from '../../runtimes/sandbox/index.ts';
import { ADMIN, staticAuth } from '../fixtures/static-auth.ts';
import { mountsUnder, removeScratchDataDir } from '../storage-scratch.ts';
import { ROOT, apiCall, onPath, recordEvents, request, servePlugins, sleep, waitFor } from '../helpers.ts';
import { probeService } from '../probe.ts';

const MIB = 1024 * 1024;

function whyNot(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (loop mounts)';
  if (!existsSync('/dev/loop-control')) return 'needs loop devices (/dev/loop-control: CONFIG_BLK_DEV_LOOP or modprobe loop)';
  for (const tool of ['mkfs.ext4', 'resize2fs', 'e2fsck', 'losetup']) {
    if (!onPath(tool)) return `needs ${tool} (apt-get install e2fsprogs util-linux)`;
  }
  return false;
}
const skip = whyNot();
const skipNamespace = skip || (onPath('bwrap') ? false : 'needs bwrap (apt-get install bubblewrap)');
const skipSandbox = skip || (onPath('runsc') ? false : 'needs runsc (apt-get install runsc)');

const plugins = [...servePlugins, staticAuth, instancesApi, storage];

/** Our mounts (mount point -> device), from mountinfo. */
/**
 * A data dir of the test's own (the storage plugin keeps mounts at shutdown on purpose, so the test kernel must
 * not delete it while they are there): every mount under it is undone, then it is deleted, even on failure. That
 * happens once the file's tests are done, after each test's own after-hooks have stopped its kernels: a cleanup
 * added before a kernel's stop would run first (after-hooks run in the order added) and, if it threw, skip the stop.
 */
function scratchDataDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-storage-'));
  scratchDirs.push(dir);
  return dir;
}

const scratchDirs: string[] = [];
after(() => {
  let failure: unknown = null;
  for (const dir of scratchDirs) {
    try {
      removeScratchDataDir(dir);
    } catch (error) {
      failure ??= error;
    }
  }
  if (failure !== null) throw failure;
});

async function storageKernel(t: TestContext, dataDir: string, config: ConfigInput, extra = plugins): Promise<TestKernel> {
  const kernel = await createTestKernel({
    plugins: extra,
    config: {
      ...config,
      settings: { healthInterval: '1h', ...config.settings, dataDir },
      pluginOptions: { storage: { pollInterval: '50ms', gcInterval: false }, ...config.pluginOptions },
    },
  });
  t.after(() => kernel.stop());
  return kernel;
}

interface FillResult {
  ok: boolean;
  code?: string;
  written: number;
}

async function fill(kernel: TestKernel, service: string, id: string, file: string, mb: number): Promise<{ status: number; result: FillResult }> {
  const target = path.join(kernel.instanceDir(service, id), file);
  const reply = await request(kernel, `${id}.${service}.localhost`, `/fill?path=${encodeURIComponent(target)}&mb=${mb}`);
  return { status: reply.status, result: JSON.parse(reply.body) as FillResult };
}

async function storageFacts(kernel: TestKernel, service: string, id: string): Promise<StorageUsage> {
  const reply = await apiCall(kernel, 'GET', `/api/instances/${service}/${id}`, ADMIN);
  assert.equal(reply.status, 200, reply.body);
  const storageFact = (JSON.parse(reply.body) as { facts: { storage?: StorageUsage } }).facts.storage;
  assert.ok(storageFact, `facts.storage of ${service}:${id}: ${reply.body}`);
  return storageFact;
}

/** Runs the `ten` CLI against a kernel with an admin token; resolves with its exit code and output. */
function ten(kernel: TestKernel, dataDir: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const token = readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, NO_COLOR: '1' };
  return new Promise((resolve) => {
    execFile(process.execPath, [path.join(ROOT, 'bin', 'ten.mjs'), ...args, '--server', kernel.url, '--token', token], { env, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

const warningsOf = (events: InstanceEvent[], key: string): InstanceEvent[] => events.filter((e) => e.type === 'storage-warning' && e.instance === key);

test('config: limits.storage, limits.storageWarn and keepData are validated with clear messages', () => {
  const service = (extra: Record<string, unknown>) => configSchema.safeParse({ services: { s: { command: 'node app.js', ...extra } } });
  const messages = (result: ReturnType<typeof service>): string =>
    result.success ? '' : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');

  const ok = service({ limits: { storage: '64MiB' }, keepData: '7d' });
  assert.ok(ok.success, messages(ok));
  assert.equal(ok.data.services.s!.limits!.storage, 64 * MIB);
  assert.equal(ok.data.services.s!.limits!.storageWarn, 0.9, 'default warning threshold');
  assert.equal(ok.data.services.s!.keepData, 7 * 86_400_000);
  assert.equal(service({ keepData: false }).data?.services.s!.keepData, false);

  assert.match(messages(service({ limits: { storage: '1MB' } })), /services\.s\.limits\.storage: expected at least 16MiB/);
  assert.match(messages(service({ limits: { storage: 'lots' } })), /limits\.storage: expected a size like/);
  assert.match(messages(service({ limits: { storage: '64MiB', storageWarn: 1.5 } })), /limits\.storageWarn: expected a share of the limit up to 1/);
  assert.match(messages(service({ keepData: 'soon' })), /keepData: expected true .* false .* or a retention like '7d'/);
  assert.match(messages(service({ keepData: '0s' })), /keepData: expected true/);
});

test('mountinfo: mount points with escaped characters, optional fields, the last mount on a path wins', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-mountinfo-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'mountinfo');
  writeFileSync(
    file,
    [
      '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
      '90 27 7:3 / /data/.storage/mnt/notes/a rw,nosuid,nodev,noatime shared:5 - ext4 /dev/loop3 rw',
      '91 27 7:4 / /data/.storage/mnt/my\\040notes/b rw - ext4 /dev/loop4 rw',
      '92 90 0:40 / /data/.storage/mnt/notes/a rw - tmpfs none rw',
      '',
    ].join('\n'),
  );
  const entries = readMounts(file);
  assert.equal(entries.length, 4);
  assert.deepEqual(entries[1], { mountPoint: '/data/.storage/mnt/notes/a', fsType: 'ext4', source: '/dev/loop3' });
  assert.equal(entries[2]!.mountPoint, '/data/.storage/mnt/my notes/b');
  const ours = pluginMountsUnder('/data/.storage/mnt', entries);
  assert.deepEqual([...ours.keys()], ['/data/.storage/mnt/notes/a', '/data/.storage/mnt/my notes/b']);
  assert.equal(ours.get('/data/.storage/mnt/notes/a')!.fsType, 'tmpfs', 'the mount on top is the one visible');
});

test('a runtime that cannot follow the link gets the mount point wherever DATA_DIR was mentioned, whole path components only', () => {
  const link = '/d/instances/notes/a';
  const spec = {
    dataDir: link,
    command: 'node',
    args: ['app.js', `--db=${link}/db.sqlite`, '/d/instances/notes/ab/x'],
    env: { DATA_DIR: link, HOME: link, OTHER: '/d/instances/notes/ab', LIST: `${link}:${link}/x` },
    socketPath: `${link}/app.sock`,
  } as unknown as SpawnSpec;
  const moved = pointAtMount(spec, '/d/.storage/mnt/notes/a');
  assert.equal(moved.dataDir, '/d/.storage/mnt/notes/a');
  assert.deepEqual(moved.args, ['app.js', '--db=/d/.storage/mnt/notes/a/db.sqlite', '/d/instances/notes/ab/x']);
  assert.deepEqual(moved.env, {
    DATA_DIR: '/d/.storage/mnt/notes/a',
    HOME: '/d/.storage/mnt/notes/a',
    OTHER: '/d/instances/notes/ab',
    LIST: '/d/.storage/mnt/notes/a:/d/.storage/mnt/notes/a/x',
  });
  assert.equal(moved.socketPath, '/d/.storage/mnt/notes/a/app.sock');
});

describe('storage limits', { skip, timeout: 120_000 }, () => {
  test('a storage bomb gets ENOSPC at its limit while a neighbour keeps writing; usage in the API and metrics; one warning per crossing', async (t) => {
    const dataDir = scratchDataDir();
    const kernel = await storageKernel(t, dataDir, {
      services: { probe: probeService({ limits: { storage: '24MiB', storageWarn: 0.8 } }) },
    });
    const events = recordEvents(kernel);
    await kernel.spawnInstance('probe', 'bomb');
    await kernel.spawnInstance('probe', 'calm');

    const mounts = mountsUnder(dataDir);
    assert.equal(mounts.size, 2, `one mount per instance: ${[...mounts.keys()].join(', ')}`);
    for (const device of mounts.values()) assert.match(device, /^\/dev\/loop\d+$/);

    const bomb = await fill(kernel, 'probe', 'bomb', 'big', 100);
    assert.equal(bomb.status, 507);
    assert.equal(bomb.result.code, 'ENOSPC');
    assert.ok(bomb.result.written > 15 * MIB && bomb.result.written <= 24 * MIB, `stopped at ${bomb.result.written} bytes`);

    // The neighbour is not affected: it writes its 4 MiB as if nothing happened.
    const calm = await fill(kernel, 'probe', 'calm', 'small', 4);
    assert.equal(calm.status, 200, JSON.stringify(calm.result));
    assert.equal(calm.result.written, 4 * MIB);
    // And the host's disk only paid for what the bomb could write.
    const image = path.join(realpathSync(dataDir), '.storage', 'images', 'probe', 'bomb.img');
    assert.ok(statSync(image).blocks * 512 <= 25 * MIB, 'the image never takes more than its size on the host');

    const full = await storageFacts(kernel, 'probe', 'bomb');
    assert.equal(full.imageBytes, 24 * MIB);
    assert.ok(full.limitBytes > 18 * MIB && full.limitBytes < 24 * MIB, `capacity ${full.limitBytes}`);
    assert.ok(full.usedBytes >= full.limitBytes * 0.95, `the bomb filled its capacity: ${JSON.stringify(full)}`);
    const neighbour = await storageFacts(kernel, 'probe', 'calm');
    assert.ok(neighbour.usedBytes >= 4 * MIB && neighbour.usedBytes < 8 * MIB, JSON.stringify(neighbour));

    const gauge = kernel.metricsRegistry.getSingleMetric('tenement_instance_storage_bytes');
    assert.ok(gauge, 'the storage gauge is registered');
    const samples = (await gauge.get()).values;
    const sample = (instance: string, kind: string) => samples.find((s) => s.labels.instance === instance && s.labels.kind === kind)?.value;
    assert.equal(sample('probe:bomb', 'limit'), full.limitBytes);
    assert.ok((sample('probe:bomb', 'used') ?? 0) >= full.limitBytes * 0.95);
    assert.ok((sample('probe:calm', 'used') ?? 0) >= 4 * MIB);

    // Above 80%: one event, however many polls (every 50 ms) see it there.
    await waitFor(() => warningsOf(events, 'probe:bomb').length > 0, 'the storage warning of probe:bomb', 5_000);
    await sleep(400);
    assert.equal(warningsOf(events, 'probe:bomb').length, 1, 'one warning per crossing');
    assert.match(warningsOf(events, 'probe:bomb')[0]!.reason ?? '', /at or above its warning threshold of 80%/);
    assert.equal(warningsOf(events, 'probe:calm').length, 0);

    // Back below the threshold re-arms it: the next crossing warns again.
    const removed = await request(kernel, 'bomb.probe.localhost', `/remove?path=${encodeURIComponent(path.join(kernel.instanceDir('probe', 'bomb'), 'big'))}`);
    assert.equal(removed.status, 200, removed.body);
    await sleep(300);
    assert.equal(warningsOf(events, 'probe:bomb').length, 1);
    assert.equal((await fill(kernel, 'probe', 'bomb', 'again', 100)).result.code, 'ENOSPC');
    await waitFor(() => warningsOf(events, 'probe:bomb').length === 2, 'a second warning after re-arming', 5_000);
  });

  test('namespace tier: the tenant uid owns its mounted DATA_DIR, writes into it and stops at the limit', { skip: skipNamespace }, async (t) => {
    const dataDir = scratchDataDir();
    const kernel = await storageKernel(
      t,
      dataDir,
      { services: { probe: probeService({ isolation: 'namespace', limits: { storage: '16MiB' } }) } },
      [...plugins, namespaceRuntime],
    );
    await kernel.spawnInstance('probe', 'ns');
    const probe = JSON.parse((await request(kernel, 'ns.probe.localhost', '/probe')).body) as { uid: number; writable: { dataDir: { ok: boolean } } };
    assert.notEqual(probe.uid, 0, 'the tenant is not root');
    assert.equal(probe.writable.dataDir.ok, true, 'the tenant can write into its mounted DATA_DIR');
    const mountPoint = [...mountsUnder(dataDir).keys()][0]!;
    assert.equal(statSync(mountPoint).uid, probe.uid, 'the root of the image belongs to the tenant uid');
    const bomb = await fill(kernel, 'probe', 'ns', 'big', 100);
    assert.equal(bomb.result.code, 'ENOSPC', JSON.stringify(bomb.result));
  });

  test('sandbox tier (gVisor): the mounted DATA_DIR is bound into the sandbox and stops the tenant at the limit', { skip: skipSandbox }, async (t) => {
    const dataDir = scratchDataDir();
    const kernel = await storageKernel(
      t,
      dataDir,
      { services: { probe: probeService({ isolation: 'sandbox', limits: { storage: '16MiB' } }) } },
      [...plugins, sandboxRuntime],
    );
    await kernel.spawnInstance('probe', 'sb');
    const probe = JSON.parse((await request(kernel, 'sb.probe.localhost', '/probe')).body) as {
      writable: { dataDir: { ok: boolean } };
      env: Record<string, string>;
    };
    assert.equal(probe.writable.dataDir.ok, true, 'the tenant can write into its mounted DATA_DIR');
    // runsc cannot follow DATA_DIR's link: the sandbox gets the mount point itself as DATA_DIR.
    const mountPoint = [...mountsUnder(dataDir).keys()][0]!;
    assert.equal(probe.env.DATA_DIR, mountPoint);
    const target = encodeURIComponent(path.join(mountPoint, 'big'));
    const bomb = { result: JSON.parse((await request(kernel, 'sb.probe.localhost', `/fill?path=${target}&mb=100`)).body) as FillResult };
    assert.equal(bomb.result.code, 'ENOSPC', JSON.stringify(bomb.result));
    assert.ok((await storageFacts(kernel, 'probe', 'sb')).usedBytes > 10 * MIB, 'what the sandbox wrote is in the image');
  });

  test('mounts survive a restart of the kernel; removal releases the mount and keepData: false deletes the data', async (t) => {
    const dataDir = scratchDataDir();
    const config: ConfigInput = { services: { probe: probeService({ keepData: false, limits: { storage: '16MiB' } }) } };
    const first = await storageKernel(t, dataDir, config);
    await first.spawnInstance('probe', 'a');
    writeFileSync(path.join(first.instanceDir('probe', 'a'), 'note.txt'), 'kept across restarts');
    const before = mountsUnder(dataDir);
    assert.equal(before.size, 1);
    await first.stop();
    assert.deepEqual(mountsUnder(dataDir), before, 'the mount stays when Tenement stops');

    const second = await storageKernel(t, dataDir, config);
    // The instance is restored (desired running) on the mount it had, not on a second one.
    await waitFor(() => second.instances.get('probe', 'a')?.state === 'running', 'probe:a to be running again');
    assert.deepEqual(mountsUnder(dataDir), before, 'the same mount, adopted');
    const note = await request(second, 'a.probe.localhost', `/exists?path=${encodeURIComponent(path.join(second.instanceDir('probe', 'a'), 'note.txt'))}`);
    assert.deepEqual(JSON.parse(note.body), { exists: true });
    assert.ok((await storageFacts(second, 'probe', 'a')).usedBytes > 0);

    // Hibernation keeps the mount (the wake needs no mount) and its usage stays visible.
    await second.hibernate(second.instances.get('probe', 'a')!);
    assert.equal(second.instances.get('probe', 'a')!.state, 'hibernated');
    assert.deepEqual(mountsUnder(dataDir), before, 'hibernation keeps the mount');
    assert.ok((await storageFacts(second, 'probe', 'a')).usedBytes > 0, 'usage of a hibernated instance');
    const woken = await request(second, 'a.probe.localhost', `/exists?path=${encodeURIComponent(path.join(second.instanceDir('probe', 'a'), 'note.txt'))}`);
    assert.deepEqual(JSON.parse(woken.body), { exists: true }, 'woken on the same data');

    const image = path.join(realpathSync(dataDir), '.storage', 'images', 'probe', 'a.img');
    assert.ok(existsSync(image));
    const reply = await apiCall(second, 'DELETE', '/api/instances/probe/a', ADMIN);
    assert.equal(reply.status, 200, reply.body);
    await waitFor(() => mountsUnder(dataDir).size === 0, 'the mount to be released');
    await waitFor(() => !existsSync(image), 'the image to be deleted (keepData: false)');
    assert.equal(existsSync(second.instanceDir('probe', 'a')), false, 'DATA_DIR is gone');
  });

  test("keepData: '500ms' keeps a removed instance's data until gc runs after the retention; ten ps and ten gc", async (t) => {
    const dataDir = scratchDataDir();
    const kernel = await storageKernel(t, dataDir, { services: { probe: probeService({ keepData: '500ms', limits: { storage: '16MiB' } }) } }, [
      ...plugins,
      authBearer,
    ]);
    await kernel.spawnInstance('probe', 'r');
    const dataPath = kernel.instanceDir('probe', 'r');
    assert.equal((await fill(kernel, 'probe', 'r', 'data', 2)).status, 200);
    const image = path.join(realpathSync(dataDir), '.storage', 'images', 'probe', 'r.img');

    const ps = await ten(kernel, dataDir, ['ps']);
    assert.equal(ps.code, 0, ps.stderr);
    assert.match(ps.stdout, /STORAGE/);
    assert.match(ps.stdout, /probe:r .* \d+(\.\d)?MB\/1\d(\.\d)?MB\n/, ps.stdout);

    await kernel.removeInstance(kernel.instances.get('probe', 'r')!);
    await waitFor(() => mountsUnder(dataDir).size === 0, 'the mount to be released on removal');
    assert.ok(existsSync(image), 'the image is kept during the retention');

    const early = JSON.parse((await apiCall(kernel, 'POST', '/api/gc', ADMIN)).body) as {
      deleted: unknown[];
      pending: Array<{ instance: string }>;
    };
    assert.deepEqual(early.deleted, []);
    assert.deepEqual(early.pending.map((p) => p.instance), ['probe:r']);
    assert.ok(existsSync(image));

    await sleep(550);
    const gc = await ten(kernel, dataDir, ['gc']);
    assert.equal(gc.code, 0, gc.stderr);
    assert.match(gc.stdout, /^DELETED\s+FREED\s+WHY\nprobe:r\s+\d(\.\d)?MB\s+removed at .*retention has passed\n/, gc.stdout);
    assert.match(gc.stdout, /freed \d(\.\d)?MB \(1 instance\) in /);
    assert.equal(existsSync(image), false, 'the image is deleted');
    assert.equal(existsSync(dataPath), false, 'DATA_DIR is deleted');
    const again = JSON.parse((await ten(kernel, dataDir, ['gc', '--json'])).stdout) as { deleted: unknown[]; freedBytes: number };
    assert.deepEqual([again.deleted, again.freedBytes], [[], 0], 'nothing left to delete');
  });

  test('a limit added to an instance whose data does not fit refuses to start it, says why, and changes nothing', async (t) => {
    const dataDir = scratchDataDir();
    const service = (limits?: { storage: string }): ConfigInput => ({ services: { probe: probeService({ restart: 'never', limits }) } });
    const plain = await storageKernel(t, dataDir, service());
    await plain.spawnInstance('probe', 'big');
    assert.equal((await fill(plain, 'probe', 'big', 'data', 20)).status, 200);
    await plain.stop();

    const limited = await storageKernel(t, dataDir, service({ storage: '16MiB' }));
    await waitFor(() => limited.instances.get('probe', 'big')?.state === 'failed', 'probe:big to fail its start');
    assert.match(
      limited.instances.get('probe', 'big')!.lastError ?? '',
      /limits\.storage was added to an instance that has data: its 1 entries in .* do not fit the image .*Raise limits\.storage, or remove data first/,
    );
    const dataPath = limited.instanceDir('probe', 'big');
    assert.equal(statSync(path.join(dataPath, 'data')).size, 20 * MIB, 'the data is where it was');
    assert.equal(mountsUnder(dataDir).size, 0, 'no mount left');
    assert.equal(existsSync(path.join(realpathSync(dataDir), '.storage', 'images', 'probe', 'big.img')), false, 'no image left');
  });

  test('a limit added later takes the existing data along; raised, the image grows; lowered below use, it stays and says why, else it shrinks', async (t) => {
    const dataDir = scratchDataDir();
    const withLimit = (storageLimit: string | undefined): ConfigInput => ({
      services: { probe: probeService({ limits: storageLimit ? { storage: storageLimit } : undefined }) },
    });
    // No limit: a plain folder with data in it.
    const plain = await storageKernel(t, dataDir, withLimit(undefined));
    await plain.spawnInstance('probe', 'm');
    assert.equal((await fill(plain, 'probe', 'm', 'old', 3)).status, 200);
    await plain.stop();
    assert.equal(mountsUnder(dataDir).size, 0);

    const limited = await storageKernel(t, dataDir, withLimit('16MiB'));
    await waitFor(() => limited.instances.get('probe', 'm')?.state === 'running', 'probe:m to run with its new limit');
    assert.equal(mountsUnder(dataDir).size, 1);
    const old = await request(limited, 'm.probe.localhost', `/exists?path=${encodeURIComponent(path.join(limited.instanceDir('probe', 'm'), 'old'))}`);
    assert.deepEqual(JSON.parse(old.body), { exists: true }, 'the existing data moved into the image');
    const small = await storageFacts(limited, 'probe', 'm');
    assert.ok(small.usedBytes >= 3 * MIB);
    assert.equal((await fill(limited, 'probe', 'm', 'more', 8)).status, 200);
    await limited.stop();

    const grown = await storageKernel(t, dataDir, withLimit('32MiB'));
    await waitFor(() => grown.instances.get('probe', 'm')?.state === 'running', 'probe:m to run with a raised limit');
    const big = await storageFacts(grown, 'probe', 'm');
    assert.equal(big.imageBytes, 32 * MIB);
    assert.ok(big.limitBytes > small.limitBytes + 14 * MIB, `grew from ${small.limitBytes} to ${big.limitBytes}`);
    assert.equal((await fill(grown, 'probe', 'm', 'extra', 6)).status, 200, 'the room the raise gave is usable');
    await grown.stop();

    const lowered = await storageKernel(t, dataDir, withLimit('16MiB'));
    await waitFor(() => lowered.instances.get('probe', 'm')?.state === 'running', 'probe:m to run with a lowered limit');
    const kept = (await storageFacts(lowered, 'probe', 'm')) as StorageUsage & { warning?: string };
    assert.equal(kept.imageBytes, 32 * MIB, 'still 32MiB: 17MiB of data do not fit 16MiB');
    assert.match(kept.warning ?? '', /lowered to 16MiB, but it uses .*stays at 32MiB/);
    for (const file of ['extra', 'more']) {
      const target = encodeURIComponent(path.join(lowered.instanceDir('probe', 'm'), file));
      assert.equal((await request(lowered, 'm.probe.localhost', `/remove?path=${target}`)).status, 200);
    }
    await lowered.stop();

    // With the data down to 3MiB, the next start shrinks the image to the lowered limit, data intact.
    const shrunk = await storageKernel(t, dataDir, withLimit('16MiB'));
    await waitFor(() => shrunk.instances.get('probe', 'm')?.state === 'running', 'probe:m to run shrunk');
    const after = (await storageFacts(shrunk, 'probe', 'm')) as StorageUsage & { warning?: string };
    assert.equal(after.imageBytes, 16 * MIB);
    assert.equal(after.warning, undefined);
    const image = path.join(realpathSync(dataDir), '.storage', 'images', 'probe', 'm.img');
    assert.equal(statSync(image).size, 16 * MIB);
    const still = await request(shrunk, 'm.probe.localhost', `/exists?path=${encodeURIComponent(path.join(shrunk.instanceDir('probe', 'm'), 'old'))}`);
    assert.deepEqual(JSON.parse(still.body), { exists: true });
  });
});
