// Storage limits end to end (plugins/storage), an image's life: real loop-mounted ext4 images under real
// instances, their mounts across a restart and a hibernation, removal and retention via gc (and `ten ps`, `ten gc`),
// and a limit added, raised or lowered for an instance that already has data.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { ConfigInput } from '../../core/config/schema.ts';
import type { TestKernel } from '../../core/test-kernel.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import type { StorageUsage } from '../../plugins/storage/usage.ts';
import { ADMIN } from '../fixtures/static-auth.ts';
import { mountsUnder } from '../storage-scratch.ts';
import { ROOT, apiCall, request, sleep, waitFor } from '../helpers.ts';
import { probeService } from '../probe.ts';
import { MIB, fill, plugins, scratchDataDir, storageFacts, storageKernel, storageSkipReason } from './storage-fixture.ts';

const skip = storageSkipReason();

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

describe('storage limits', { skip, timeout: 120_000 }, () => {
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
