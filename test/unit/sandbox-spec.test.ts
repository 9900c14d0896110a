// The gVisor bundle the sandbox tier writes: what is visible, writable and allowed inside.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ociSpec, type SandboxLayout } from '../../runtimes/sandbox/oci-spec.ts';
import { containerId } from '../../runtimes/sandbox/spawn-sandbox.ts';

const layout: SandboxLayout = {
  program: '/usr/bin/node',
  args: ['app.mjs'],
  cwd: '/srv/notes',
  env: { PORT: '30001', DATA_DIR: '/srv/notes/tenement-data/instances/notes/alice' },
  dataRoot: '/srv/notes/tenement-data',
  dataDir: '/srv/notes/tenement-data/instances/notes/alice',
  hostname: 'alice-notes',
  user: { uid: 123456, gid: 123456 },
};

test('the root is the host read-only; /tmp and the data root are masked; only DATA_DIR is bound writable', () => {
  const spec = ociSpec(layout);
  assert.deepEqual(spec.root, { path: '/', readonly: true });
  const writable = spec.mounts.filter((m) => m.type === 'bind' && m.options?.includes('rw')).map((m) => m.destination);
  assert.deepEqual(writable, [layout.dataDir]);
  const order = spec.mounts.map((m) => m.destination);
  assert.ok(order.indexOf('/tmp') >= 0 && order.indexOf(layout.dataRoot) < order.indexOf(layout.dataDir), 'DATA_DIR is bound over the masked data root');
  assert.equal(spec.mounts.find((m) => m.destination === layout.dataRoot)?.type, 'tmpfs');
  assert.ok(!order.includes(layout.cwd), 'a visible cwd needs no bind');
});

test('no capabilities, no_new_privs, the tenant uid, and its environment only', () => {
  const spec = ociSpec(layout);
  for (const set of Object.values(spec.process.capabilities)) assert.deepEqual(set, []);
  assert.equal(spec.process.noNewPrivileges, true);
  assert.deepEqual(spec.process.user, { uid: 123456, gid: 123456, additionalGids: [] });
  assert.deepEqual(spec.process.env, ['PORT=30001', `DATA_DIR=${layout.dataDir}`]);
  assert.deepEqual(spec.process.args, ['/usr/bin/node', 'app.mjs']);
});

test('the network namespace: none by default (runsc --network=host uses its own), the given one when set', () => {
  assert.equal(ociSpec(layout).linux.namespaces.some((ns) => ns.type === 'network'), false);
  assert.deepEqual(ociSpec({ ...layout, netns: '/run/netns/tn1-0' }).linux.namespaces.at(-1), { type: 'network', path: '/run/netns/tn1-0' });
});

test('limits.pids becomes RLIMIT_NPROC inside; a cwd hidden by a mask is bound back read-only', () => {
  assert.deepEqual(ociSpec({ ...layout, maxTasks: 64 }).process.rlimits.find((r) => r.type === 'RLIMIT_NPROC'), { type: 'RLIMIT_NPROC', hard: 64, soft: 64 });
  assert.equal(ociSpec(layout).process.rlimits.some((r) => r.type === 'RLIMIT_NPROC'), false);
  const inTmp = ociSpec({ ...layout, cwd: '/tmp/app' });
  assert.deepEqual(inTmp.mounts.at(-1), { destination: '/tmp/app', type: 'bind', source: '/tmp/app', options: ['rbind', 'ro'] });
});

test('container ids are unique per run and valid for runsc', () => {
  const a = containerId('Notes_App', 'alice');
  assert.match(a, /^[a-z0-9-]+$/);
  assert.notEqual(a, containerId('Notes_App', 'alice'));
  assert.ok(containerId('x'.repeat(63), 'y'.repeat(63)).length <= 58);
});
