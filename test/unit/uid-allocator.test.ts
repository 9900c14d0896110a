// One uid per instance (issue 18): the allocator hands out the lowest free uid of settings.tenantUids, never
// one a host account or a service's explicit `user` has, keeps it in the state database, and says so with a
// coded error when the range is used up.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { Store } from '../../core/store.ts';
import { UidAllocator, hostAccountIds } from '../../core/process/uid-allocator.ts';

function tempStore(t: TestContext): { store: Store; dir: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-uids-'));
  const store = new Store(path.join(dir, 'tenement.db'));
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { store, dir };
}

test('uid allocator: lowest free uid per instance, stable, skipping host accounts and reserved uids', (t) => {
  const { store } = tempStore(t);
  const host = new Set([1001]);
  const allocator = new UidAllocator(store, { range: { from: 1000, to: 1005 }, reserved: new Set([1003]), hostIds: () => host });
  assert.equal(allocator.uidFor('notes', 'a'), 1000);
  assert.equal(allocator.uidFor('notes', 'b'), 1002, '1001 is a host account');
  assert.equal(allocator.uidFor('notes', 'a'), 1000, 'the same instance keeps its uid');
  assert.equal(allocator.uidFor('blog', 'a'), 1004, "1003 is a service's explicit user; another service's 'a' is another instance");
  assert.equal(allocator.release('notes', 'a'), true);
  assert.equal(allocator.release('notes', 'a'), false);
  assert.equal(allocator.uidFor('notes', 'c'), 1000, 'a released uid is handed out again, lowest first');
  // An account created on the host since: the instance moves to a free uid rather than share it.
  host.add(1002);
  assert.equal(allocator.uidFor('notes', 'b'), 1005);
  assert.deepEqual(
    allocator.list().map((row) => `${row.service}:${row.id}=${row.uid}`),
    ['notes:c=1000', 'blog:a=1004', 'notes:b=1005'],
  );
});

test('uid allocator: a full range is a coded error naming settings.tenantUids, and nothing is shared', (t) => {
  const { store } = tempStore(t);
  const allocator = new UidAllocator(store, { range: { from: 2000, to: 2001 }, hostIds: () => new Set() });
  allocator.uidFor('s', 'a');
  allocator.uidFor('s', 'b');
  assert.throws(
    () => allocator.uidFor('s', 'c'),
    (error: Error & { code?: string; status?: number }) => {
      assert.equal(error.code, 'TNM_ERR_NO_TENANT_UID');
      assert.equal(error.status, 503);
      assert.match(error.message, /settings\.tenantUids \(2000-2001\)/);
      return true;
    },
  );
  const uids = allocator.list().map((row) => row.uid);
  assert.equal(new Set(uids).size, uids.length);
});

test('uid allocator: assignments persist in the state database, and a narrowed range moves the instance', (t) => {
  const { store } = tempStore(t);
  const first = new UidAllocator(store, { range: { from: 3000, to: 3010 }, hostIds: () => new Set() });
  assert.equal(first.uidFor('s', 'a'), 3000);
  assert.equal(first.uidFor('s', 'b'), 3001);
  const file = store.file;
  store.close();
  const reopened = new Store(file);
  t.after(() => reopened.close());
  const again = new UidAllocator(reopened, { range: { from: 3000, to: 3010 }, hostIds: () => new Set() });
  assert.equal(again.uidFor('s', 'b'), 3001, 'kept across a restart of Tenement');
  const narrowed = new UidAllocator(reopened, { range: { from: 3005, to: 3010 }, hostIds: () => new Set() });
  assert.equal(narrowed.uidFor('s', 'a'), 3005, 'a uid outside the configured range is given up for one inside');
});

test('host account ids: uids of a passwd file and gids of a group file', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-passwd-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'passwd'), 'root:x:0:0::/root:/bin/sh\nalice:x:100007:100007::/home/alice:/bin/sh\nbroken\n');
  writeFileSync(path.join(dir, 'group'), 'root:x:0:\nstaff:x:100009:\n');
  assert.deepEqual([...hostAccountIds(path.join(dir, 'passwd'), path.join(dir, 'group'))].sort(), [0, 100007, 100009]);
});
