// What the storage limit tests share: why they skip on this host, a kernel with the storage plugin on a data dir
// of the test's own (its mounts undone once the file's tests are done), the probe app's fill, and the storage facts
// the API reports for an instance.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, type TestContext } from 'node:test';
import type { ConfigInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import storage from '../../plugins/storage/index.ts';
import type { StorageUsage } from '../../plugins/storage/usage.ts';
import { ADMIN, staticAuth } from '../fixtures/static-auth.ts';
import { removeScratchDataDir } from '../storage-scratch.ts';
import { apiCall, onPath, request, servePlugins } from '../helpers.ts';

export const MIB = 1024 * 1024;

/** Why the tests that mount images skip on this host (root, loop devices, e2fsprogs), or false. */
export function storageSkipReason(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (loop mounts)';
  if (!existsSync('/dev/loop-control')) return 'needs loop devices (/dev/loop-control: CONFIG_BLK_DEV_LOOP or modprobe loop)';
  for (const tool of ['mkfs.ext4', 'resize2fs', 'e2fsck', 'losetup']) {
    if (!onPath(tool)) return `needs ${tool} (apt-get install e2fsprogs util-linux)`;
  }
  return false;
}

/** `ten serve`'s plugins with the storage plugin, a static admin token and the instances API. */
export const plugins = [...servePlugins, staticAuth, instancesApi, storage];

/**
 * A data dir of the test's own (the storage plugin keeps mounts at shutdown on purpose, so the test kernel must
 * not delete it while they are there): every mount under it is undone, then it is deleted, even on failure. That
 * happens once the file's tests are done, after each test's own after-hooks have stopped its kernels: a cleanup
 * added before a kernel's stop would run first (after-hooks run in the order added) and, if it threw, skip the stop.
 */
export function scratchDataDir(): string {
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

/** A kernel with the storage plugin on `dataDir`, polling usage every 50 ms, stopped after test `t`. */
export async function storageKernel(t: TestContext, dataDir: string, config: ConfigInput, extra = plugins): Promise<TestKernel> {
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

export interface FillResult {
  ok: boolean;
  code?: string;
  written: number;
}

/** Has the probe instance `service:id` write `mb` MiB into `file` of its DATA_DIR: what it managed, or why not. */
export async function fill(kernel: TestKernel, service: string, id: string, file: string, mb: number): Promise<{ status: number; result: FillResult }> {
  const target = path.join(kernel.instanceDir(service, id), file);
  const reply = await request(kernel, `${id}.${service}.localhost`, `/fill?path=${encodeURIComponent(target)}&mb=${mb}`);
  return { status: reply.status, result: JSON.parse(reply.body) as FillResult };
}

/** facts.storage of an instance, as GET /api/instances/:service/:id reports it. */
export async function storageFacts(kernel: TestKernel, service: string, id: string): Promise<StorageUsage> {
  const reply = await apiCall(kernel, 'GET', `/api/instances/${service}/${id}`, ADMIN);
  assert.equal(reply.status, 200, reply.body);
  const storageFact = (JSON.parse(reply.body) as { facts: { storage?: StorageUsage } }).facts.storage;
  assert.ok(storageFact, `facts.storage of ${service}:${id}: ${reply.body}`);
  return storageFact;
}
