// Suspend-depth hibernation of the namespace tier with real CRIU and real bwrap (plugins/snapshots/namespace.ts,
// docs/snapshots.md "The namespace tier"): the sandbox's tree is saved when it hibernates and restored on the next
// request with its namespaces; memory and /tmp survive, the pid namespace and the tenant's uid hold, DATA_DIR is
// still writable and the host still read-only; one restore serves a herd; a corrupted image or another instance's
// image falls back to a cold start with the reason logged. One kernel for the file.
import assert from 'node:assert/strict';
import { chmodSync, cpSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { bootKernel, type BootedKernel } from '../../core/boot.ts';
import namespaceRuntime from '../../runtimes/namespace/index.ts';
import snapshots from '../../plugins/snapshots/index.ts';
import cgroups from '../../plugins/cgroups/index.ts';
import { detectCgroups, missingFor } from '../../plugins/cgroups/detect.ts';
import { criuStatus } from '../../plugins/snapshots/criu.ts';
import { onPath, request, servePlugins, waitFor } from '../helpers.ts';
import { dumpableNode } from '../dumpable-node.ts';

const APP = `import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
// Every cold start leaves a line in DATA_DIR and a note in the sandbox's own /tmp (a tmpfs CRIU saves).
fs.appendFileSync(path.join(process.env.DATA_DIR, 'starts'), process.pid + '\\n');
fs.writeFileSync('/tmp/note', 'written at start ' + Date.now());
const tryWrite = (file) => {
  try {
    fs.writeFileSync(file, 'x');
    return 'ok';
  } catch (error) {
    return error.code;
  }
};
let count = 0;
http.createServer((req, res) => {
  if (req.url === '/health') return res.end('ok');
  if (req.url === '/check') {
    const nspid = fs.readFileSync('/proc/self/status', 'utf8').split('\\n').find((l) => l.startsWith('NSpid:')).slice(6).trim().split(/\\s+/).map(Number);
    return res.end(JSON.stringify({
      nspid, uid: process.getuid(), note: fs.readFileSync('/tmp/note', 'utf8'),
      dataDir: tryWrite(path.join(process.env.DATA_DIR, 'written')), appDir: tryWrite(path.join(process.cwd(), 'x')), etc: tryWrite('/etc/tenement-x'),
    }));
  }
  count += 1;
  res.end(JSON.stringify({ count, pid: process.pid }));
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

type Line = { msg: string; instance?: string; reason?: string; restoreMs?: number };
type Check = { nspid: number[]; uid: number; note: string; dataDir: string; appDir: string; etc: string };

const status = await criuStatus();

const NODE = status.usable ? dumpableNode() : null;
// With cgroup limits where the host can enforce them (as ten serve has): the restored tree must join them.
const withCgroups = missingFor(detectCgroups(), ['memory', 'pids']) === null;
const skip =
  process.getuid?.() !== 0
    ? 'needs root: CRIU saves and restores other uids'
    : !onPath('bwrap')
      ? 'needs bwrap (apt-get install bubblewrap)'
      : !status.usable
        ? `CRIU is not usable here (${status.reason}); .ci/run fetches it with npm run fetch:criu`
        : NODE === null
          ? 'every node on PATH maps io_uring rings (Node >= 22), which CRIU 4.2 cannot checkpoint; these tests need a Node 20'
          : false;

describe('suspend-depth hibernation of the namespace tier', { skip, timeout: 300_000 }, () => {
  let kernel: BootedKernel;
  let appDir: string;
  const lines: Line[] = [];

  before(async () => {
    appDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-snapns-app-'));
    chmodSync(appDir, 0o755);
    writeFileSync(path.join(appDir, 'app.mjs'), APP, { mode: 0o644 });
    const logger = pino({ level: 'info', base: undefined }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
    kernel = await bootKernel({
      plugins: [...servePlugins, namespaceRuntime, ...(withCgroups ? [cgroups] : []), snapshots],
      logger,
      config: {
        services: {
          app: {
            command: `${NODE} ${path.join(appDir, 'app.mjs')}`,
            cwd: appDir,
            isolation: 'namespace',
            health: '/health',
            startupTimeout: '30s',
            idleTimeout: 0,
            wakeQueue: 500,
            hibernate: { mode: 'suspend' },
            ...(withCgroups ? { limits: { memory: '256MB', pids: 200 } } : {}),
          },
        },
      },
    });
  });
  after(() => kernel?.close().finally(() => rmSync(appDir, { recursive: true, force: true })));

  const get = async <T>(id: string, urlPath = '/'): Promise<T> => {
    const reply = await request(kernel, `${id}.app.localhost`, urlPath, { timeoutMs: 60_000 });
    assert.equal(reply.status, 200, reply.body);
    return JSON.parse(reply.body) as T;
  };
  const count = (id: string): Promise<{ count: number; pid: number }> => get(id);
  const starts = (id: string): number => readFileSync(path.join(kernel.instanceDir('app', id), 'starts'), 'utf8').trim().split('\n').length;
  const imageOf = (id: string): string => path.join(kernel.config.settings.dataDir, '.snapshots', 'app', id);
  const logged = (msg: string, id: string): Line[] => lines.filter((l) => l.msg === msg && l.instance === `app:${id}`);

  async function suspend(id: string): Promise<void> {
    const instance = kernel.instances.get('app', id)!;
    const before = logged('suspended', id).length;
    await kernel.hibernate(instance, 'test');
    assert.equal(instance.state, 'hibernated');
    const failed = logged('suspend failed: stopping instead', id).at(-1);
    assert.equal(failed, undefined, failed?.reason);
    assert.equal(logged('suspended', id).length, before + 1, 'dumped');
  }

  /** The host processes of an instance's sandbox: those whose environment names its DATA_DIR. */
  function sandboxProcesses(id: string): number[] {
    const marker = `DATA_DIR=${kernel.instanceDir('app', id)}`;
    const found: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      try {
        const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
        if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
        if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(marker)) found.push(Number(entry));
      } catch {
        // Gone meanwhile.
      }
    }
    return found;
  }

  test('a suspended sandbox is restored with its memory, /tmp, pid namespace and uid; DATA_DIR writable, host read-only', async () => {
    await kernel.spawnInstance('app', 'alice');
    assert.equal((await count('alice')).count, 1);
    assert.equal((await count('alice')).count, 2);
    const before = await get<Check>('alice', '/check');
    const tenantUid = statSync(kernel.instanceDir('app', 'alice')).uid;
    const appPid = (): number => sandboxProcesses('alice').find((pid) => readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('app.mjs'))!;
    const cgroupsBefore = readFileSync(`/proc/${appPid()}/cgroup`, 'utf8');
    assert.notEqual(tenantUid, 0);

    await suspend('alice');
    const image = imageOf('alice');
    assert.equal(statSync(image).mode & 0o777, 0o700);
    for (const name of readdirSync(image)) {
      const info = statSync(path.join(image, name));
      assert.equal(info.mode & 0o777, 0o600, name);
      assert.equal(info.uid, 0, name);
    }
    assert.deepEqual(sandboxProcesses('alice'), [], 'the dumped sandbox is gone');

    const woken = await count('alice');
    assert.equal(logged('restore failed: starting cold', 'alice').at(-1)?.reason, undefined);
    assert.equal(woken.count, 3, 'the counter kept in memory survived the suspension');
    assert.equal(starts('alice'), 1, 'the app did not boot again');
    assert.equal(logged('restored from suspend', 'alice').length, 1, 'the wake was a restore');
    assert.equal(existsSync(image), false, 'an image is restored once, then deleted');

    // Seen from inside the restored process.
    const after = await get<Check>('alice', '/check');
    assert.equal(after.note, before.note, "the sandbox's own /tmp came back");
    assert.deepEqual(before.nspid, [2], "the app is pid 2 of the sandbox's pid namespace (its /proc shows only that)");
    assert.deepEqual(after.nspid, [2], 'and is again after the restore');
    assert.equal(after.uid, 0, "uid 0 of its user namespace (the tenant's own uid outside)");
    assert.equal(after.dataDir, 'ok', 'DATA_DIR is writable');
    assert.equal(after.appDir, 'EROFS', "the app's folder is still read-only");
    assert.equal(after.etc, 'EROFS', '/etc is still read-only');
    assert.equal(readFileSync(path.join(kernel.instanceDir('app', 'alice'), 'written'), 'utf8'), 'x', 'a DATA_DIR write lands on the host');
    // Seen from the host: bwrap's init and the app, in a pid namespace, as the instance's uid and no other.
    const pids = sandboxProcesses('alice');
    assert.equal(pids.length, 2, `bwrap's init and the app: ${pids.join(' ')}`);
    for (const pid of pids) {
      const procStatus = readFileSync(`/proc/${pid}/status`, 'utf8');
      assert.match(procStatus, new RegExp(`^Uid:\\t${tenantUid}\\t${tenantUid}\\t${tenantUid}\\t${tenantUid}$`, 'm'), `pid ${pid} runs as the tenant`);
      assert.match(procStatus, /^CapEff:\t0+$/m, `pid ${pid} has no capability`);
      assert.match(procStatus, /^NSpid:\t\d+\t\d+$/m, `pid ${pid} is in a pid namespace`);
      assert.equal(readFileSync(`/proc/${pid}/uid_map`, 'utf8').trim().split(/\s+/).join(' '), `0 ${tenantUid} 1`);
    }
    if (withCgroups) assert.equal(readFileSync(`/proc/${appPid()}/cgroup`, 'utf8'), cgroupsBefore, "the restored app is in the instance's cgroups again");

    // A restored sandbox suspends and restores again.
    await suspend('alice');
    assert.equal((await count('alice')).count, 4);
    assert.equal(starts('alice'), 1);

    // A restored app that dies is seen dying (CRIU, the init's parent, exits): the restart policy starts it cold.
    const app = appPid();
    assert.ok(app !== undefined, 'the restored app is found');
    process.kill(app, 'SIGKILL');
    await waitFor(() => starts('alice') === 2 && kernel.instances.get('app', 'alice')?.state === 'running', 'a cold restart after the restored app died', 60_000);
    assert.equal((await count('alice')).count, 1);

    // Images and the restored root folder go with the instance.
    await suspend('alice');
    assert.ok(existsSync(imageOf('alice')));
    await kernel.removeInstance(kernel.instances.get('app', 'alice')!);
    assert.equal(existsSync(imageOf('alice')), false, 'the image is removed with the instance');
    assert.equal(existsSync(`${imageOf('alice')}.root`), false, 'the root folder is removed with the instance');
  });

  test('a herd of 200 requests during a restore: one restore, no error', async () => {
    await kernel.spawnInstance('app', 'herd');
    assert.equal((await count('herd')).count, 1);
    await suspend('herd');
    const replies = await Promise.all(Array.from({ length: 200 }, () => count('herd')));
    assert.deepEqual(replies.map((r) => r.count).sort((a, b) => a - b), Array.from({ length: 200 }, (_, i) => i + 2), 'every request served by the restored process, in its memory');
    assert.equal(logged('restored from suspend', 'herd').length, 1, 'one restore for the herd');
    assert.equal(starts('herd'), 1, 'no cold start');
  });

  test('a corrupted image falls back to a cold start, with the reason logged', async () => {
    await kernel.spawnInstance('app', 'bad');
    assert.equal((await count('bad')).count, 1);
    await suspend('bad');
    const image = imageOf('bad');
    for (const name of readdirSync(image)) if (name.startsWith('core-') || name.startsWith('pagemap')) writeFileSync(path.join(image, name), Buffer.alloc(64, 0xa5));
    assert.equal((await count('bad')).count, 1, 'a fresh process: the request was served, not lost');
    assert.equal(starts('bad'), 2, 'started cold');
    assert.match(logged('restore failed: starting cold', 'bad').at(-1)?.reason ?? '', /criu restore failed/);
    assert.equal(existsSync(image), false, 'the bad image is not tried again');
  });

  test("another instance's image is never restored: identity checked, cold start", async () => {
    await kernel.spawnInstance('app', 'owner');
    await kernel.spawnInstance('app', 'mallory');
    assert.equal((await count('owner')).count, 1);
    assert.equal((await count('owner')).count, 2);
    await suspend('owner');
    await suspend('mallory');
    // Mallory's folder now holds owner's image (as if planted): restoring it would hand mallory owner's memory.
    rmSync(imageOf('mallory'), { recursive: true });
    cpSync(imageOf('owner'), imageOf('mallory'), { recursive: true });
    assert.equal((await count('mallory')).count, 1, "mallory got a fresh process, not owner's memory");
    assert.match(logged('restore failed: starting cold', 'mallory').at(-1)?.reason ?? '', /image is of app:owner/);
    assert.equal((await count('owner')).count, 3, "owner's own image still restores");
  });
});

test("hibernate mode 'suspend' is refused at config time for the sandbox and microvm tiers and a private network, with the reason", { timeout: 60_000 }, async () => {
  for (const isolation of ['sandbox', 'microvm']) {
    await assert.rejects(
      bootKernel({ plugins: [...servePlugins, snapshots], config: { services: { app: { command: 'node x.mjs', isolation, hibernate: { mode: 'suspend' } } } } }),
      (error: Error & { code?: string }) => /^TNM_ERR_/.test(error.code ?? '') && new RegExp(`services\\.app\\.hibernate\\.mode 'suspend': isolation '${isolation}'.*only the process tier and the namespace tier`).test(error.message),
    );
  }
  // A sandbox in a network namespace of its own: CRIU refuses it (docs/snapshots.md), so the config does.
  await assert.rejects(
    bootKernel({ plugins: [...servePlugins, snapshots], config: { services: { app: { command: 'node x.mjs', isolation: 'namespace', network: 'private', hibernate: { mode: 'suspend' } } } } }),
    (error: Error & { code?: string }) => /^TNM_ERR_/.test(error.code ?? '') && /isolation 'namespace' with network 'private' cannot be suspended/.test(error.message),
  );
});
