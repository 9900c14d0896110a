// How a tenant's program and environment are chosen (core/process/tenant-launch.ts), on real files.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { SYSTEM_PATH, dropPrivilegesArgs, findProgram, tenantEnv, tenantSearchPath } from '../../core/process/tenant-launch.ts';

test('the tenant search path is the system folders plus the folder of the node running Tenement', () => {
  const dirs = tenantSearchPath().split(':');
  assert.ok(dirs.includes(path.dirname(process.execPath)));
  for (const dir of SYSTEM_PATH.split(':')) assert.ok(dirs.includes(dir), dir);
  assert.ok(!dirs.some((dir) => dir.startsWith('/root/')), 'no home folder');
});

test('findProgram takes the first executable on the path; a name with a slash is a path from cwd', (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-find-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const sub of ['a', 'b']) mkdirSync(path.join(dir, sub));
  writeFileSync(path.join(dir, 'a', 'tool'), 'not executable');
  writeFileSync(path.join(dir, 'b', 'tool'), '#!/bin/sh\n', { mode: 0o755 });
  chmodSync(path.join(dir, 'a', 'tool'), 0o644);
  assert.equal(findProgram('tool', `${dir}/a:${dir}/b`, '/'), path.join(dir, 'b', 'tool'));
  assert.equal(findProgram('./b/tool', '', dir), path.join(dir, 'b', 'tool'));
  assert.equal(findProgram('nope', `${dir}/a:${dir}/b`, '/'), null);
});

test("a tenant's environment is its own: none of Tenement's, the service's env wins", (t) => {
  process.env.TENEMENT_TEST_TOKEN = 'secret';
  t.after(() => delete process.env.TENEMENT_TEST_TOKEN);
  const spec = { env: { PORT: '3000', HOME: '/custom', EXTRA: '1' }, dataDir: '/data/x' };
  const asTenant = tenantEnv(spec, { uid: 1000, gid: 1000 });
  assert.equal(asTenant.TENEMENT_TEST_TOKEN, undefined);
  assert.equal(asTenant.PATH, tenantSearchPath());
  assert.equal(asTenant.HOME, '/custom', "the service's env wins");
  assert.equal(asTenant.EXTRA, '1');
  assert.equal(tenantEnv({ env: {}, dataDir: '/data/x' }, null).HOME, '/data/x');
  assert.equal(tenantEnv({ env: {}, dataDir: '/data/x' }, null).PATH, process.env.PATH, "not root: Tenement's own PATH");
});

test('setpriv drops uid, gid, groups and every capability set, and sets no_new_privs', () => {
  assert.deepEqual(dropPrivilegesArgs({ uid: 1234, gid: 5678 }), [
    '--reuid=1234',
    '--regid=5678',
    '--clear-groups',
    '--inh-caps=-all',
    '--bounding-set=-all',
    '--no-new-privs',
  ]);
});
