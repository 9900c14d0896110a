// Alert webhooks (plugins/webhooks) in a test kernel, the storage rule: an instance's DATA_DIR above a share of its
// limit, on the storage plugin's real loop-mounted ext4 image, fires at a real HTTP receiver and resolves.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import storagePlugin from '../../plugins/storage/index.ts';
import webhooksPlugin from '../../plugins/webhooks/index.ts';
import { ECHO_APP, onPath, servePlugins, sleep, waitFor } from '../helpers.ts';
import { removeScratchDataDir } from '../storage-scratch.ts';
import { SECRET, receiver } from './webhooks-fixture.ts';

/** Storage rules need the storage plugin's real loop-mounted ext4 images. */
function storageSkip(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (loop mounts)';
  if (!existsSync('/dev/loop-control')) return 'needs loop devices (/dev/loop-control)';
  for (const tool of ['mkfs.ext4', 'resize2fs', 'e2fsck', 'losetup']) if (!onPath(tool)) return `needs ${tool} (apt-get install e2fsprogs util-linux)`;
  return false;
}

/** A data dir whose mounts and loop devices `undoScratch` undoes (the storage plugin keeps mounts at shutdown on purpose). */
function scratchDataDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'tenement-webhooks-storage-'));
}

describe('alert webhooks on storage', { skip: storageSkip(), timeout: 120_000 }, () => {
  test('storage above a share of the limit fires, and resolves when the data is deleted', async (t) => {
    const dataDir = scratchDataDir();
    const hook = await receiver();
    const kernel = await createTestKernel({
      plugins: [...servePlugins, storagePlugin, webhooksPlugin],
      config: {
        settings: {
          dataDir,
          alerts: { webhooks: [{ name: 'ops', url: hook.url, secret: SECRET }], rules: [{ on: 'storage', above: 0.5 }], interval: '50ms' },
        },
        services: { echo: { command: `node ${ECHO_APP}`, idleTimeout: false, limits: { storage: '32MiB' } } },
        pluginOptions: { storage: { pollInterval: '50ms', gcInterval: false } },
      },
    });
    // One hook, stopping before unmounting and removing: the kernel writes into the folder (after-hooks stop at the
    // first that throws).
    t.after(() => kernel.stop().finally(() => removeScratchDataDir(dataDir)));
    await kernel.spawnInstance('echo', 'a');
    await sleep(300);
    assert.equal(hook.received.length, 0, 'an empty DATA_DIR is under the threshold');
    const file = path.join(kernel.instanceDir('echo', 'a'), 'big.bin');
    writeFileSync(file, Buffer.alloc(20 * 1024 * 1024, 1));
    await waitFor(() => hook.received.length >= 1, 'the storage alert', 30_000);
    assert.equal(hook.received[0]!.body.kind, 'firing');
    assert.match(String(hook.received[0]!.body.summary), /echo:a storage is at \d+(\.\d)?% of its limit/);
    rmSync(file);
    await waitFor(() => hook.received.length >= 2, 'the resolved alert', 30_000);
    assert.equal(hook.received[1]!.body.kind, 'resolved');
    assert.match(String(hook.received[1]!.body.summary), /back under 50%/);
  });
});
