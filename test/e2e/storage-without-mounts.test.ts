// The storage plugin's parts that need no mounts (plugins/storage): the config of storage limits and data
// retention, the parser of /proc/self/mountinfo, and DATA_DIR pointed at the mount for a runtime that cannot follow
// the link.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { configSchema } from '../../core/config/schema.ts';
import type { SpawnSpec } from '../../core/types.ts';
import { pointAtMount } from '../../plugins/storage/link-blind.ts';
import { mountsUnder as pluginMountsUnder, readMounts } from '../../plugins/storage/mountinfo.ts';
import { MIB } from './storage-fixture.ts';

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
