// Named snapshots with real CRIU (plugins/snapshots, docs/snapshots.md): a snapshot holds the process and its
// DATA_DIR of one instant and a restore brings both back; retention, the size budget, tenant scoping, hostile
// names, a damaged image (a cold start on the restored DATA_DIR), and the `ten snapshot` commands against a real
// `ten serve`. One kernel for the API tests, one server for the CLI.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { bootKernel, type BootedKernel } from '../../core/boot.ts';
import snapshots from '../../plugins/snapshots/index.ts';
import { pack, unpack } from '../../plugins/snapshots/archive.ts';
import { criuStatus } from '../../plugins/snapshots/criu.ts';
import { namedRefusal } from '../../plugins/snapshots/named-setup.ts';
import { ADMIN, staticAuth, tenant } from '../fixtures/static-auth.ts';
import { apiCall, freePort, request, ROOT, servePlugins, waitFor } from '../helpers.ts';
import { stopServeChild } from '../ten-cli.ts';

// A counter in memory, files in DATA_DIR: /n counts, /put?k=v writes file k, /files lists DATA_DIR.
const APP = `import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
const dir = process.env.DATA_DIR;
fs.appendFileSync(path.join(dir, 'starts'), process.pid + '\\n');
let count = 0;
let ticks = 0;
let ticker = null;
http.createServer((req, res) => {
  const url = new URL(req.url, 'http://x');
  if (url.pathname === '/health') return res.end('ok');
  if (url.pathname === '/put') {
    for (const [k, v] of url.searchParams) fs.writeFileSync(path.join(dir, k), v);
    return res.end('{}');
  }
  // A writer that never stops: each tick appends one byte and counts it, in one turn of the event loop, through a
  // file it holds open (as a database would: CRIU reopens it on restore, at its size and offset).
  if (url.pathname === '/tick') {
    const fd = fs.openSync(path.join(dir, 'ticks'), 'a');
    ticker ??= setInterval(() => { fs.writeSync(fd, 'x'); ticks += 1; }, 1);
    return res.end('{}');
  }
  if (url.pathname === '/check') return res.end(JSON.stringify({ ticks, bytes: fs.statSync(path.join(dir, 'ticks')).size }));
  if (url.pathname === '/files') {
    const files = {};
    for (const name of fs.readdirSync(dir).sort()) files[name] = fs.readFileSync(path.join(dir, name), 'utf8');
    return res.end(JSON.stringify(files));
  }
  count += 1;
  res.end(JSON.stringify({ count, pid: process.pid }));
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

type Line = { msg: string; instance?: string; reason?: string; snapshot?: string };

const status = await criuStatus();

/** A Node for the tenant app that CRIU can checkpoint (no io_uring: Node 20), as in snapshots.test.ts. */
function dumpableNode(): string | null {
  const candidates = [process.execPath, ...execFileSync('which', ['-a', 'node'], { encoding: 'utf8' }).split('\n').filter(Boolean)];
  for (const node of new Set(candidates)) {
    const probe = spawnSync(node, ['-e', "process.stdout.write(String(require('fs').readFileSync('/proc/self/maps', 'utf8').includes('anon_inode:[io_uring]')))"], { encoding: 'utf8' });
    if (probe.status === 0 && probe.stdout === 'false') return node;
  }
  return null;
}
const NODE = status.usable ? dumpableNode() : null;
const skip = !status.usable
  ? `CRIU is not usable here (${status.reason}); .ci/run fetches it with npm run fetch:criu`
  : NODE === null
    ? 'every node on PATH maps io_uring rings (Node >= 22), which CRIU 4.2 cannot checkpoint; the snapshot tests need a Node 20'
    : false;

function appDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-snapnamed-'));
  chmodSync(dir, 0o755);
  writeFileSync(path.join(dir, 'app.mjs'), APP, { mode: 0o644 });
  return dir;
}

interface View {
  name: string;
  bytes: number;
  rawBytes: number;
  frozenMs: number;
}

describe('named snapshots through the API', { skip, timeout: 300_000 }, () => {
  let kernel: BootedKernel;
  let dir = '';
  const lines: Line[] = [];

  before(async () => {
    dir = appDir();
    const logger = pino({ level: 'info', base: undefined }, { write: (line: string) => void lines.push(JSON.parse(line) as Line) });
    const command = `${NODE ?? 'node'} ${path.join(dir, 'app.mjs')}`;
    kernel = await bootKernel({
      plugins: [...servePlugins, staticAuth, snapshots],
      logger,
      config: {
        services: {
          app: { command, health: '/health', startupTimeout: '30s', idleTimeout: 0, snapshots: { keep: 2, maxBytes: '256MB' } },
          tiny: { command, health: '/health', startupTimeout: '30s', idleTimeout: 0, snapshots: { maxBytes: '1MB' } },
          // Never started: a service whose instances cannot be snapshotted.
          sock: { command, listen: 'socket', idleTimeout: 0 },
        },
      },
    });
  });
  // Stop first, then remove (one hook); a kernel that never booted leaves only the folder to remove.
  after(async () => {
    try {
      await (kernel as BootedKernel | undefined)?.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const call = async (method: string, url: string, who: Record<string, string>, body?: unknown): Promise<{ status: number; json: Record<string, unknown>; code?: string; message?: string }> => {
    const reply = await apiCall(kernel, method, url, who, body);
    const json = reply.body ? (JSON.parse(reply.body) as Record<string, unknown>) : {};
    const error = json.error as { code?: string; message?: string } | undefined;
    return { status: reply.status, json, code: error?.code, message: error?.message };
  };
  const get = async (service: string, id: string, url: string): Promise<Record<string, unknown>> => {
    const reply = await request(kernel, `${id}.${service}.localhost`, url, { timeoutMs: 60_000 });
    assert.equal(reply.status, 200, reply.body);
    return JSON.parse(reply.body) as Record<string, unknown>;
  };
  const names = async (id: string): Promise<string[]> => {
    const { status: code, json } = await call('GET', `/api/instances/app/${id}/snapshots`, ADMIN);
    assert.equal(code, 200);
    return (json.snapshots as View[]).map((s) => s.name);
  };
  const folder = (service: string, id: string): string => path.join(kernel.config.settings.dataDir, '.snapshots', '_named', service, id);

  test('a snapshot restores memory and DATA_DIR together; the instance runs on after it', async () => {
    await kernel.spawnInstance('app', 'alice');
    assert.equal((await get('app', 'alice', '/n')).count, 1);
    const first = await get('app', 'alice', '/n');
    await get('app', 'alice', '/put?note=v1');

    const created = await call('POST', '/api/instances/app/alice/snapshots', tenant('alice'), { name: 'before' });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    const view = created.json as unknown as View;
    assert.ok(view.bytes > 0 && view.bytes < view.rawBytes, `compressed: ${view.bytes} of ${view.rawBytes}`);
    // Tenant memory: root's, 0700 folders, 0600 files, nothing left of the scratch folder.
    const snap = path.join(folder('app', 'alice'), 'before');
    assert.deepEqual(readdirSync(folder('app', 'alice')), ['before']);
    for (const at of [snap, folder('app', 'alice'), path.dirname(folder('app', 'alice'))]) assert.equal(statSync(at).mode & 0o777, 0o700, at);
    for (const name of readdirSync(snap)) {
      const info = statSync(path.join(snap, name));
      assert.equal(info.mode & 0o777, 0o600, name);
      assert.equal(info.uid, 0, name);
    }

    // It ran on: same process, memory going on; then memory and files change.
    const third = await get('app', 'alice', '/n');
    assert.deepEqual([third.count, third.pid], [3, first.pid]);
    await get('app', 'alice', '/put?note=v2&added=later');
    assert.deepEqual(await get('app', 'alice', '/files'), { added: 'later', note: 'v2', starts: `${first.pid}\n` });

    // Requests sent once the running copy is stopping are held and served by the restored one.
    const restoring = call('POST', '/api/instances/app/alice/snapshots/before/restore', tenant('alice'));
    await waitFor(() => kernel.instances.get('app', 'alice')!.state !== 'running', 'the restore to stop the running copy', 60_000);
    const herd = await Promise.all(Array.from({ length: 30 }, () => get('app', 'alice', '/n')));
    const restored = await restoring;
    assert.equal(restored.status, 200, JSON.stringify(restored.json));
    assert.equal(restored.json.restored, true, String(restored.json.reason));
    assert.equal(lines.filter((l) => l.msg === 'snapshot restored').length, 1, 'one restore');
    // The snapshot's memory had count 2 (the running copy had reached 3): every request counted on from there.
    assert.deepEqual(herd.map((r) => r.count).sort((a, b) => Number(a) - Number(b)), Array.from({ length: 30 }, (_, i) => i + 3), 'all served, by the restored memory');
    assert.ok(herd.every((r) => r.pid === first.pid), 'the restored process (same pid)');
    assert.deepEqual(await get('app', 'alice', '/files'), { note: 'v1', starts: `${first.pid}\n` }, 'DATA_DIR as it was: the added file is gone, no cold start');
    assert.deepEqual(readdirSync(folder('app', 'alice')), ['before'], 'the snapshot stays; no scratch left');
  });

  test('memory and DATA_DIR are of one instant: a writer that never stops is restored with as many bytes as it counted', async () => {
    await kernel.spawnInstance('app', 'frank');
    await get('app', 'frank', '/tick');
    await waitFor(async () => Number((await get('app', 'frank', '/check')).ticks) > 50, 'the writer to run', 30_000);
    const before = Number((await get('app', 'frank', '/check')).ticks);
    assert.equal((await call('POST', '/api/instances/app/frank/snapshots', ADMIN, { name: 'busy' })).status, 201);
    const after = Number((await get('app', 'frank', '/check')).ticks);
    // The running copy goes on far past the snapshot, so a restored count is told apart from a running one.
    await waitFor(async () => Number((await get('app', 'frank', '/check')).ticks) > after + 1000, 'the writer to go on', 60_000);
    const restored = await call('POST', '/api/instances/app/frank/snapshots/busy/restore', ADMIN);
    assert.equal(restored.json.restored, true, String(restored.json.reason));
    const check = await get('app', 'frank', '/check');
    // The restored writer ticks on at once, from the snapshot's count: not far past `after`.
    assert.ok(Number(check.ticks) >= before && Number(check.ticks) < after + 1000, `the snapshot's count: ${before} <= ${JSON.stringify(check)} < ${after} + 1000`);
    assert.equal(check.bytes, check.ticks, 'the file holds exactly what the memory counted');
  });

  test('list, delete, retention deletes the oldest, and snapshots go with their instance', async () => {
    await kernel.spawnInstance('app', 'dave');
    for (const name of ['first', 'second', 'third']) assert.equal((await call('POST', '/api/instances/app/dave/snapshots', ADMIN, { name })).status, 201);
    assert.deepEqual(await names('dave'), ['second', 'third'], 'keep: 2, the oldest went');
    const taken = await call('POST', '/api/instances/app/dave/snapshots', ADMIN, { name: 'third' });
    assert.deepEqual([taken.status, taken.code], [409, 'TNM_ERR_CONFLICT']);
    assert.equal((await call('DELETE', '/api/instances/app/dave/snapshots/second', ADMIN)).status, 200);
    assert.deepEqual(await names('dave'), ['third']);
    assert.deepEqual((await call('DELETE', '/api/instances/app/dave/snapshots/second', ADMIN)).code, 'TNM_ERR_NOT_FOUND');
    const all = await call('GET', '/api/snapshots?service=app', ADMIN);
    assert.ok((all.json.snapshots as Array<{ id: string; name: string }>).some((s) => s.id === 'dave' && s.name === 'third'));
    assert.deepEqual(readdirSync(folder('app', 'dave')), ['third'], 'no scratch left');
    await kernel.removeInstance(kernel.instances.get('app', 'dave')!);
    assert.equal(existsSync(folder('app', 'dave')), false, 'removed with the instance');
  });

  test('a snapshot larger than maxBytes alone is refused, and nothing is left of it', async () => {
    await kernel.spawnInstance('tiny', 'alice');
    const refused = await call('POST', '/api/instances/tiny/alice/snapshots', ADMIN, { name: 'big' });
    assert.deepEqual([refused.status, refused.code], [507, 'TNM_ERR_SNAPSHOT_BUDGET']);
    assert.match(String(refused.message), /services\.tiny\.snapshots\.maxBytes/);
    assert.deepEqual(readdirSync(folder('tiny', 'alice')), [], 'no half-written snapshot');
    assert.equal(kernel.instances.get('tiny', 'alice')!.state, 'running', 'it runs on');
  });

  test("a tenant token reaches its own instances' snapshots only; hostile names are 400", async () => {
    await kernel.spawnInstance('app', 'bob');
    await kernel.spawnInstance('app', 'eve');
    assert.equal((await call('POST', '/api/instances/app/eve/snapshots', tenant('eve'), { name: 'before' })).status, 201);
    const bob = tenant('bob');
    for (const [method, url, body] of [
      ['GET', '/api/instances/app/eve/snapshots', undefined],
      ['POST', '/api/instances/app/eve/snapshots', { name: 'mine' }],
      ['POST', '/api/instances/app/eve/snapshots/before/restore', undefined],
      ['DELETE', '/api/instances/app/eve/snapshots/before', undefined],
    ] as const) {
      const answer = await call(method, url, bob, body);
      assert.deepEqual([answer.status, answer.code], [404, 'TNM_ERR_UNKNOWN_INSTANCE'], `${method} ${url}`);
    }
    assert.deepEqual((await call('GET', '/api/snapshots', bob)).json.snapshots, [], "bob sees none of eve's");
    assert.deepEqual(await names('eve'), ['before'], 'untouched');

    for (const name of ['__proto__', 'constructor', 'prototype', 'A', '-x', '.new-x', '..', 'a'.repeat(64), 'x'.repeat(300), 'a/b', '']) {
      const created = await call('POST', '/api/instances/app/bob/snapshots', bob, { name });
      assert.equal(created.status, 400, `create ${JSON.stringify(name)}: ${JSON.stringify(created.json)}`);
      if (name.length <= 256) assert.equal(created.code, 'TNM_ERR_BAD_NAME', name);
    }
    for (const name of ['__proto__', 'constructor', '%2e%2e', '.new-x']) {
      const restored = await call('POST', `/api/instances/app/bob/snapshots/${name}/restore`, bob);
      assert.deepEqual([restored.status, restored.code], [400, 'TNM_ERR_BAD_NAME'], name);
    }
    assert.equal((await call('POST', '/api/instances/app/bob/snapshots', bob, { name: 'x', extra: 1 })).status, 400);
    assert.equal(existsSync(folder('app', 'bob')), false, 'nothing written for a refused name');
    assert.equal(namedRefusal({ ...kernel.instances.get('app', 'bob')!.config, isolation: 'namespace' })?.includes('only the process tier'), true);
    kernel.createInstance('sock', 'bob');
    const unsupported = await call('POST', '/api/instances/sock/bob/snapshots', bob, { name: 'x' });
    assert.deepEqual([unsupported.status, unsupported.code], [409, 'TNM_ERR_CONFLICT']);
    assert.match(String(unsupported.message), /sock:bob cannot be snapshotted: listen: 'socket'/);
  });

  test('a damaged image falls back to a cold start on the restored DATA_DIR, with the reason', async () => {
    await kernel.spawnInstance('app', 'carol');
    const before = await get('app', 'carol', '/n');
    await get('app', 'carol', '/put?note=snap');
    assert.equal((await call('POST', '/api/instances/app/carol/snapshots', ADMIN, { name: 'bad' })).status, 201);
    await get('app', 'carol', '/put?note=later&extra=1');
    // Damage the process image inside the archive, keep it a valid archive.
    const archive = path.join(folder('app', 'carol'), 'bad', 'snapshot.tar.zst');
    const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-snapbad-'));
    try {
      await unpack(archive, work);
      for (const name of readdirSync(path.join(work, 'image'))) {
        if (name.startsWith('core-') || name.startsWith('pagemap')) writeFileSync(path.join(work, 'image', name), Buffer.alloc(64, 0xa5));
      }
      rmSync(archive);
      await pack(work, ['image', 'data'], archive);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    // An archive that cannot be read is refused before anything stops.
    const running = kernel.instances.get('app', 'carol')!.handle!.pid;
    assert.equal((await call('POST', '/api/instances/app/carol/snapshots', ADMIN, { name: 'unreadable' })).status, 201);
    writeFileSync(path.join(folder('app', 'carol'), 'unreadable', 'snapshot.tar.zst'), Buffer.alloc(4096, 0x5a));
    const refused = await call('POST', '/api/instances/app/carol/snapshots/unreadable/restore', ADMIN);
    assert.deepEqual([refused.status, refused.code], [500, 'TNM_ERR_SNAPSHOT_FAILED']);
    assert.match(String(refused.message), /cannot be restored \(the instance was left as it was\): the snapshot archive cannot be read/);
    assert.equal(kernel.instances.get('app', 'carol')!.handle?.pid, running, 'the running copy was left alone');
    assert.deepEqual(Object.keys(await get('app', 'carol', '/files')), ['extra', 'note', 'starts']);

    const restored = await call('POST', '/api/instances/app/carol/snapshots/bad/restore', ADMIN);
    assert.equal(restored.status, 200, JSON.stringify(restored.json));
    assert.equal(restored.json.restored, false);
    assert.match(String(restored.json.reason), /criu restore failed/);
    assert.ok(lines.some((l) => l.msg === 'snapshot restore failed: starting cold on its DATA_DIR' && l.instance === 'app:carol'));
    const cold = await get('app', 'carol', '/n');
    assert.equal(cold.count, 1, 'a fresh process');
    const files = await get('app', 'carol', '/files');
    assert.deepEqual(Object.keys(files), ['note', 'starts']);
    assert.equal(files.note, 'snap', 'DATA_DIR of the snapshot');
    assert.equal(files.starts, `${before.pid}\n${cold.pid}\n`, "the snapshot's start, then the cold start");
  });
});

describe('ten snapshot against a real ten serve', { skip, timeout: 300_000 }, () => {
  const TEN = path.join(ROOT, 'bin', 'ten.mjs');
  let dir = '';
  let dataDir = '';
  let server: ChildProcess | null = null;
  let serverLog = '';

  const env = (): NodeJS.ProcessEnv => Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('TENEMENT_')));
  const ten = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    new Promise((resolve) => {
      execFile(process.execPath, [TEN, ...args], { cwd: dir, timeout: 120_000, env: env() }, (error, stdout, stderr) => {
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
      });
    });

  before(async () => {
    dir = appDir();
    dataDir = path.join(dir, 'data');
    mkdirSync(dataDir);
    const port = await freePort();
    const configFile = path.join(dir, 'tenement.config.json');
    writeFileSync(configFile, JSON.stringify({
      settings: { port, listen: '127.0.0.1', dataDir },
      services: { app: { command: `${NODE ?? 'node'} ${path.join(dir, 'app.mjs')}`, health: '/health', idleTimeout: false } },
    }));
    server = spawn(process.execPath, [TEN, 'serve', '--config', configFile], { cwd: dir, env: { ...env(), TENEMENT_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
    server.stderr!.on('data', (chunk: Buffer) => void (serverLog = (serverLog + chunk.toString('utf8')).slice(-20_000)));
    await waitFor(async () => {
      if (server!.exitCode !== null) throw new Error(`ten serve exited ${server!.exitCode}: ${serverLog}`);
      return existsSync(path.join(dataDir, 'admin.token')) && (await request(`http://127.0.0.1:${port}`, '127.0.0.1', '/health', { timeoutMs: 2000 }).then((r) => r.status === 200, () => false));
    }, 'ten serve to answer /health', 60_000);
  });

  after(async () => {
    try {
      if (server) await stopServeChild(server, dataDir);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('create, list, restore and delete', async () => {
    assert.equal((await ten('spawn', 'app:alice')).code, 0);
    const created = await ten('snapshot', 'create', 'app:alice', '--name', 'one');
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^snapshot one of app:alice: .+ \(.+ uncompressed\), frozen \d+ms\n$/);
    const listed = await ten('snapshot', 'list', 'app:alice');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /app:alice\s+one\s/);
    const all = await ten('snapshot', 'list', '--json');
    assert.deepEqual((JSON.parse(all.stdout) as { snapshots: Array<{ name: string }> }).snapshots.map((s) => s.name), ['one']);
    const restored = await ten('snapshot', 'restore', 'app:alice', 'one');
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, /^restored app:alice from one in \d+ms: running\n$/);
    const bad = await ten('snapshot', 'restore', 'app:alice', '__proto__');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /TNM_ERR_BAD_NAME|not allowed/);
    const missing = await ten('snapshot', 'delete', 'app:alice', 'nope');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no snapshot named 'nope'/);
    assert.equal((await ten('snapshot', 'delete', 'app:alice', 'one')).code, 0);
    assert.match((await ten('snapshot', 'list')).stdout, /no snapshots/);
  });
});

test('snapshots config errors name the field', { timeout: 60_000 }, async () => {
  for (const [snapshotsConfig, pattern] of <Array<[Record<string, unknown>, RegExp]>>[
    [{ keep: 0 }, /services\.app\.snapshots\.keep: expected at least 1 snapshot/],
    [{ keep: 2.5 }, /services\.app\.snapshots\.keep: expected a whole number/],
    [{ maxBytes: 'lots' }, /services\.app\.snapshots\.maxBytes: expected a size/],
    [{ maxBytes: '10KB' }, /services\.app\.snapshots\.maxBytes: expected at least 1MB/],
    [{ keep: 2, extra: true }, /services\.app\.snapshots/],
  ]) {
    await assert.rejects(
      bootKernel({ plugins: [...servePlugins, snapshots], config: { services: { app: { command: 'node x.mjs', snapshots: snapshotsConfig as { keep?: number } } } } }),
      (error: Error & { code?: string }) => error.code === 'TNM_ERR_CONFIG_INVALID' && pattern.test(error.message),
      JSON.stringify(snapshotsConfig),
    );
  }
});
