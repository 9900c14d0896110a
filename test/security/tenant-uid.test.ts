// One uid per instance (issue 18, item 3): two tenants of the same service used to run as the service's one uid,
// so one read and wrote the other's DATA_DIR, read its memory through /proc/PID/mem and killed it. Now each
// instance has a uid of its own from settings.tenantUids, kept in the state database: these tests run real
// tenants as root and have one attack the other.
import assert from 'node:assert/strict';
import {
  chownSync,
  linkSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';
import type { ServiceInput, Tier } from '../../core/config/schema.ts';
import type { Kernel } from '../../core/kernel.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import namespaceRuntime from '../../runtimes/namespace/index.ts';
import sandboxRuntime from '../../runtimes/sandbox/index.ts';
import storage from '../../plugins/storage/index.ts';
import { ADMIN, staticAuth } from '../fixtures/static-auth.ts';
import { DATA_IMAGE, ensureDataImage } from '../../runtimes/microvm/data-image.ts';
import { FIXTURES, apiCall, getJson, onPath, servePlugins, waitFor } from '../helpers.ts';

const NEIGHBOUR_APP = path.join(FIXTURES, 'neighbour-app.mjs');
const asRoot = process.getuid?.() === 0;
const skipNotRoot = asRoot ? false : 'Tenement is not root here: every tenant runs as its own unprivileged user';
const plugins = [...servePlugins, namespaceRuntime, sandboxRuntime];

interface Attempt {
  ok: boolean;
  code?: string;
}
interface WhoAmI {
  pid: number;
  uid: number;
  gid: number;
  dataDir: string;
}
type Reach = Record<'list' | 'read' | 'write' | 'signal' | 'mem' | 'environ' | 'ptrace' | 'term', Attempt>;

const neighbour = (overrides: Partial<ServiceInput> = {}): ServiceInput => ({
  command: `node ${NEIGHBOUR_APP}`,
  health: '/health',
  cwd: FIXTURES,
  restart: 'never',
  ...overrides,
});

/** The host pid of the instance's app (inside a namespace the app knows only its own pid). */
function appPid(dataDir: string): number {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'latin1').split('\0');
      if (cmdline[0]?.endsWith('node') !== true || !cmdline.includes(NEIGHBOUR_APP)) continue;
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(`DATA_DIR=${dataDir}`)) return Number(entry);
    } catch {
      // Gone meanwhile.
    }
  }
  throw new Error(`no process of the app with DATA_DIR=${dataDir}`);
}

const uidOf = (pid: number): number => Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

// Data dirs are removed once the file's tests are done, after every test's own after-hooks have stopped the kernels
// writing into them: a removal hook added first would run first, and one that throws skips the stops after it.
const dataDirs: string[] = [];
after(() => {
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

/** A kernel on a data dir the test owns (kept across kernel restarts), removed at the end. */
function dataDirFor(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-uid-'));
  dataDirs.push(dir);
  return dir;
}

async function kernelOn(t: TestContext, dataDir: string, services: Record<string, ServiceInput>): Promise<TestKernel> {
  const kernel = await createTestKernel({ plugins, config: { settings: { dataDir }, services } });
  t.after(() => kernel.close());
  return kernel;
}

async function running(kernel: Kernel, service: string, id: string): Promise<WhoAmI> {
  const instance = await kernel.spawnInstance(service, id);
  assert.equal(instance.state, 'running', instance.lastError ?? '');
  return getJson<WhoAmI>(kernel, `${id}.${service}.localhost`, '/whoami');
}

/** The owner and permission bits of a DATA_DIR. */
function ownerOf(dir: string): { uid: number; gid: number; mode: string } {
  const info = statSync(dir);
  return { uid: info.uid, gid: info.gid, mode: (info.mode & 0o777).toString(8) };
}

const tiers: Array<{ tier: Tier; skip: string | false }> = [
  { tier: 'process', skip: skipNotRoot },
  { tier: 'namespace', skip: skipNotRoot || (onPath('bwrap') ? false : 'needs bwrap (apt-get install bubblewrap)') },
  { tier: 'sandbox', skip: skipNotRoot || (onPath('runsc') ? false : 'needs runsc (apt-get install runsc)') },
];

for (const { tier, skip } of tiers) {
  describe(`one uid per instance, ${tier} tier`, { skip, timeout: 120_000 }, () => {
    test(`${tier}: tenant b of a service cannot read, write, signal, ptrace or read the memory of tenant a`, async (t) => {
      const kernel = await kernelOn(t, dataDirFor(), { notes: neighbour({ isolation: tier }) });
      const a = await running(kernel, 'notes', 'a');
      const b = await running(kernel, 'notes', 'b');
      assert.notEqual(a.uid, 0);
      assert.notEqual(b.uid, 0);
      const aDir = kernel.instanceDir('notes', 'a');
      assert.deepEqual(ownerOf(aDir), { uid: a.uid, gid: a.gid, mode: '700' }, "a's DATA_DIR is a's alone");
      await getJson(kernel, 'a.notes.localhost', '/seed');
      // gVisor runs the app in its own kernel: the host process to aim at is the sandbox's runsc.
      const aPid = tier === 'sandbox' ? kernel.instances.get('notes', 'a')!.handle!.pid! : appPid(aDir);
      if (tier !== 'sandbox') assert.equal(uidOf(aPid), a.uid);

      const reach = await getJson<Reach>(kernel, 'b.notes.localhost', `/reach?pid=${aPid}&dir=${encodeURIComponent(aDir)}`);
      // The process tier sees a's directory and process and is refused them (EACCES, EPERM); the namespace and
      // sandbox tiers do not even see them (a tmpfs over the data dir, a pid namespace or kernel of their own).
      const denied = tier === 'process' ? { files: ['EACCES'], process: ['EPERM'], proc: ['EACCES'] } : { files: ['ENOENT'], process: ['ESRCH'], proc: ['ENOENT'] };
      for (const attempt of ['list', 'read', 'write'] as const) {
        assert.equal(reach[attempt].ok, false, `b cannot ${attempt} a's DATA_DIR`);
        assert.ok(denied.files.includes(reach[attempt].code ?? ''), `${attempt}: ${reach[attempt].code}`);
      }
      for (const attempt of ['signal', 'ptrace', 'term'] as const) {
        assert.equal(reach[attempt].ok, false, `b cannot ${attempt} a's process`);
        assert.ok(denied.process.includes(reach[attempt].code ?? ''), `${attempt}: ${reach[attempt].code}`);
      }
      for (const attempt of ['mem', 'environ'] as const) {
        assert.equal(reach[attempt].ok, false, `b cannot open /proc/${aPid}/${attempt}`);
        assert.ok(denied.proc.includes(reach[attempt].code ?? ''), `${attempt}: ${reach[attempt].code}`);
      }
      assert.equal(lstatSync(path.join(aDir, 'intruder'), { throwIfNoEntry: false }), undefined, 'nothing was written into a');
      assert.equal(readFileSync(path.join(aDir, 'secret'), 'utf8'), 'secret of this tenant');
      assert.equal(kernel.instances.get('notes', 'a')?.state, 'running', 'a is still running');
      if (tier !== 'sandbox') assert.equal(uidOf(aPid), a.uid, 'and is the same process');
      assert.notEqual(a.uid, b.uid, 'a and b run as different uids');
    });
  });
}

describe('one uid per instance: allocation, persistence, release', { skip: skipNotRoot, timeout: 120_000 }, () => {
  test('the uid survives a restart of the instance and of the kernel; instances never share one', async (t) => {
    const dataDir = dataDirFor();
    const services = { notes: neighbour(), blog: neighbour() };
    const first = await kernelOn(t, dataDir, services);
    const uids = new Map<string, number>();
    for (const [service, id] of [['notes', 'a'], ['notes', 'b'], ['blog', 'a'], ['notes', 'c']] as const) {
      uids.set(`${service}:${id}`, (await running(first, service, id)).uid);
    }
    assert.equal(new Set(uids.values()).size, uids.size, `four instances, four uids: ${JSON.stringify([...uids])}`);
    const range = first.config.settings.tenantUids;
    for (const [key, uid] of uids) {
      assert.ok(uid >= range.from && uid <= range.to, `${key}: ${uid} is in settings.tenantUids`);
      const [service, id] = key.split(':') as [string, string];
      assert.deepEqual(ownerOf(first.instanceDir(service, id)), { uid, gid: uid, mode: '700' });
    }

    await first.supervisor.restart(first.instances.get('notes', 'a')!);
    assert.equal((await getJson<WhoAmI>(first, 'a.notes.localhost', '/whoami')).uid, uids.get('notes:a'), 'same uid after a restart');
    await first.close();

    // A new server on the same data dir brings the instances back (desired: running), each with its uid.
    const second = await kernelOn(t, dataDir, services);
    for (const [key, uid] of uids) {
      const [service, id] = key.split(':') as [string, string];
      const instance = second.instances.get(service, id)!;
      await waitFor(() => instance.state === 'running', `${key} running again`, 30_000);
      assert.equal((await getJson<WhoAmI>(second, `${id}.${service}.localhost`, '/whoami')).uid, uid, `${key} keeps its uid`);
    }
    assert.equal((await running(second, 'notes', 'd')).uid === uids.get('notes:a'), false);
    const stored = second.uids.list().map((row) => row.uid);
    assert.equal(new Set(stored).size, stored.length, 'no uid is stored twice');
  });

  test('kept data keeps its uid for a re-created instance; deleted data gives the uid back', async (t) => {
    const dataDir = dataDirFor();
    const kernel = await kernelOn(t, dataDir, { kept: neighbour({ keepData: true }), gone: neighbour({ keepData: false }) });
    const kept = await running(kernel, 'kept', 'a');
    await getJson(kernel, 'a.kept.localhost', '/seed');
    const gone = await running(kernel, 'gone', 'a');
    await kernel.removeInstance(kernel.instances.get('kept', 'a')!);
    await kernel.removeInstance(kernel.instances.get('gone', 'a')!);
    const held = kernel.uids.list().map((row) => `${row.service}:${row.id}=${row.uid}`);
    assert.deepEqual(held, [`kept:a=${kept.uid}`], "the removed instance whose data stays keeps its uid; the other's is free");

    // The freed uid is the lowest free one again: a new instance gets it, and kept:a's is never handed out.
    const other = await running(kernel, 'gone', 'b');
    assert.equal(other.uid, gone.uid);
    const again = await running(kernel, 'kept', 'a');
    assert.equal(again.uid, kept.uid, 'the re-created instance runs as the owner of its kept files');
    assert.equal(readFileSync(path.join(kernel.instanceDir('kept', 'a'), 'secret'), 'utf8'), 'secret of this tenant');
  });

  test("data deleted by gc after its keepData retention gives the uid back", async (t) => {
    const dataDir = dataDirFor();
    const kernel = await createTestKernel({
      plugins: [...plugins, storage, staticAuth],
      config: { settings: { dataDir }, services: { notes: neighbour({ keepData: '50ms' }) }, pluginOptions: { storage: { gcInterval: false } } },
    });
    t.after(() => kernel.close());
    const a = await running(kernel, 'notes', 'a');
    await kernel.removeInstance(kernel.instances.get('notes', 'a')!);
    assert.deepEqual(kernel.uids.list().map((row) => row.uid), [a.uid], 'kept while the data waits for its retention');
    await waitFor(
      async () => {
        const report = JSON.parse((await apiCall(kernel, 'POST', '/api/gc', ADMIN)).body) as { deleted: Array<{ instance: string }> };
        return report.deleted.some((entry) => entry.instance === 'notes:a');
      },
      'gc to delete the data once its retention passed',
      20_000,
    );
    assert.deepEqual(kernel.uids.list(), [], 'gc deleted the data: the uid is free');
  });

  test('data deleted by hand while Tenement was down gives the uid back at the next start', async (t) => {
    const dataDir = dataDirFor();
    const first = await kernelOn(t, dataDir, { notes: neighbour() });
    await running(first, 'notes', 'a');
    await first.removeInstance(first.instances.get('notes', 'a')!);
    assert.equal(first.uids.list().length, 1, 'kept with its data (keepData: true)');
    await first.close();
    rmSync(path.join(dataDir, 'instances', 'notes', 'a'), { recursive: true, force: true });
    const second = await kernelOn(t, dataDir, { notes: neighbour() });
    assert.deepEqual(second.uids.list(), []);
  });

  test('a DATA_DIR of the per-service uid is handed to the instance uid whole, following no link', async (t) => {
    const dataDir = dataDirFor();
    // What an earlier Tenement left: the tree owned by the service's one uid, with a link and a hard link to
    // host files a hostile tenant planted.
    const legacy = 100_000 + 4242;
    const instanceDir = path.join(dataDir, 'instances', 'notes', 'a');
    mkdirSync(path.join(instanceDir, 'sub'), { recursive: true });
    writeFileSync(path.join(instanceDir, 'sub', 'note'), 'old note');
    const hostFile = path.join(dataDir, 'host-file');
    writeFileSync(hostFile, 'host');
    symlinkSync(hostFile, path.join(instanceDir, 'link'));
    linkSync(hostFile, path.join(instanceDir, 'hardlink'));
    for (const entry of [instanceDir, path.join(instanceDir, 'sub'), path.join(instanceDir, 'sub', 'note')]) chownSync(entry, legacy, legacy);

    const kernel = await kernelOn(t, dataDir, { notes: neighbour() });
    const a = await running(kernel, 'notes', 'a');
    assert.notEqual(a.uid, legacy);
    for (const entry of ['.', 'sub', 'sub/note']) {
      assert.equal(lstatSync(path.join(instanceDir, entry)).uid, a.uid, `${entry} belongs to the instance uid`);
    }
    assert.equal(lstatSync(path.join(instanceDir, 'link')).uid, 0, 'the link is not the tree owner: left alone');
    assert.equal(statSync(hostFile).uid, 0, 'the file it names keeps its owner');
    assert.equal(statSync(path.join(instanceDir, 'hardlink')).uid, 0, 'a hard link to a host file keeps its owner');
  });

  test('the microvm data image: a planted link or hard link to a host file is refused, never chowned', (t) => {
    const dataDir = dataDirFor();
    const hostFile = path.join(dataDir, 'host-file');
    writeFileSync(hostFile, 'host');
    const instanceDir = path.join(dataDir, 'instance');
    mkdirSync(instanceDir);
    const tenant = { uid: 100_000 + 777, gid: 100_000 + 777 };
    // What a tenant of another tier (or QEMU's uid) can leave in its DATA_DIR before the service moves to microvm.
    symlinkSync(hostFile, path.join(instanceDir, DATA_IMAGE));
    assert.throws(() => ensureDataImage(instanceDir, tenant, 16 * 1024 * 1024), /cannot be opened as a file \(ELOOP\)/);
    rmSync(path.join(instanceDir, DATA_IMAGE));
    linkSync(hostFile, path.join(instanceDir, DATA_IMAGE));
    assert.throws(() => ensureDataImage(instanceDir, tenant, 16 * 1024 * 1024), /not a regular file of its own \(2 names\)/);
    assert.deepEqual(ownerOf(hostFile), { uid: 0, gid: 0, mode: '644' }, 'the host file keeps its owner and mode');
  });

  test("a service's explicit `user` is every instance's uid (the operator's choice), and reserves no uid", async (t) => {
    const kernel = await kernelOn(t, dataDirFor(), { shared: neighbour({ user: 65534 }) });
    assert.equal((await running(kernel, 'shared', 'a')).uid, 65534);
    assert.equal((await running(kernel, 'shared', 'b')).uid, 65534);
    assert.deepEqual(kernel.uids.list(), []);
  });

  test('a runtime refuses a spec that names no tenant uid rather than start it as root', async (t) => {
    const kernel = await kernelOn(t, dataDirFor(), { notes: neighbour() });
    const dataDir = kernel.instanceDir('notes', 'x');
    mkdirSync(dataDir, { recursive: true });
    const spec = {
      service: 'notes',
      id: 'x',
      tier: 'process' as const,
      command: 'node',
      args: [NEIGHBOUR_APP],
      env: {},
      cwd: FIXTURES,
      port: 1,
      host: '127.0.0.1',
      dataDir,
      config: kernel.config.services.notes!,
      onLog: () => undefined,
      onExit: () => undefined,
    };
    await assert.rejects(kernel.hooks.spawn.get('process')!.promise(spec), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'TNM_ERR_SPAWN_FAILED');
      assert.match(error.message, /no tenant uid was resolved/);
      return true;
    });
  });
});
