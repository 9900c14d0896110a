// The sealed state directory (issue 18): the database, its WAL and SHM and the admin token are 0600 whatever the
// umask, the data dir and the folders tenants walk through are 0711 (searchable, not listable; 0700 without
// root), a looser existing dir is tightened with a warning, a real tenant in each tier cannot list the data dir,
// read the database or the token, list its neighbours or connect to the API socket, and an empty or unreadable
// database refuses to start instead of starting a fresh state.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, describe, test, type TestContext } from 'node:test';
import Database from 'better-sqlite3';
import { pino } from 'pino';
import { resolveConfig } from '../../core/config/loader.ts';
import type { ConfigInput, ServiceInput } from '../../core/config/schema.ts';
import { isTenementError } from '../../core/errors.ts';
import { Kernel } from '../../core/kernel.ts';
import type { Logger } from '../../core/logger.ts';
import type { PluginEntry } from '../../core/plugin.ts';
import { MIGRATIONS } from '../../core/store.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import namespaceRuntime from '../../runtimes/namespace/index.ts';
import processRuntime from '../../runtimes/process/index.ts';
import sandboxRuntime from '../../runtimes/sandbox/index.ts';
import { FIXTURES, getJson, onPath, servePlugins, waitFor } from '../helpers.ts';

const asRoot = process.getuid?.() === 0;
const SNOOP_APP = path.join(FIXTURES, 'state-snoop-app.mjs');
const STATE_FILES = ['tenement.db', 'tenement.db-wal', 'tenement.db-shm', 'admin.token'];

const mode = (file: string): string => `0${(statSync(file).mode & 0o777).toString(8)}`;

// Data dirs are removed once the file's tests are done, after every test's own after-hooks have stopped the kernels
// writing into them: a removal hook added first would run first, and one that throws skips the stops after it.
const parentDirs: string[] = [];
after(() => {
  for (const dir of parentDirs) rmSync(dir, { recursive: true, force: true });
});

/** A folder like /srv (0755), whose `data` subfolder the kernel creates as it would `./tenement-data`. */
function parentDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-state-'));
  chmodSync(dir, 0o755);
  parentDirs.push(dir);
  return dir;
}

interface LogLine {
  level: number;
  msg: string;
  path?: string;
  mode?: string;
  fixed?: string;
}

/** A logger whose warnings the test reads back. */
function capturingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  return { logger: pino({ level: 'warn' }, sink), lines };
}

function makeKernel(dataDir: string, options: { services?: Record<string, ServiceInput>; plugins?: PluginEntry[]; logger?: Logger } = {}): Kernel {
  const config: ConfigInput = { settings: { port: 0, dataDir }, services: options.services ?? {} };
  return new Kernel({
    config: resolveConfig(config, { path: null, dir: FIXTURES }),
    plugins: options.plugins ?? [authBearer, processRuntime],
    logger: options.logger ?? pino({ level: 'silent' }),
  });
}

async function startKernel(t: TestContext, dataDir: string, options: Parameters<typeof makeKernel>[1] = {}): Promise<Kernel> {
  const kernel = makeKernel(dataDir, options);
  t.after(() => kernel.stop());
  await kernel.start();
  return kernel;
}

/** Starts a kernel that must refuse: resolves with the error it refused with. */
async function refusal(t: TestContext, dataDir: string): Promise<Error & { code?: string }> {
  const kernel = makeKernel(dataDir);
  t.after(() => kernel.stop());
  try {
    await kernel.start();
  } catch (error) {
    return error as Error & { code?: string };
  }
  assert.fail('the kernel started on a database it should have refused');
}

test('a new data dir is sealed whatever the umask: folders 0711 (0700 without root), tenement.db, -wal, -shm and admin.token 0600 after open and after writes', { timeout: 60_000 }, async (t) => {
  const dataDir = path.join(parentDir(), 'data');
  // umask 0 would make SQLite create 0666 files: the modes must not depend on it.
  const umask = process.umask(0);
  let kernel: Kernel;
  try {
    kernel = await startKernel(t, dataDir, { services: { web: { command: 'node app.js' } } });
  } finally {
    process.umask(umask);
  }
  const folder = asRoot ? '0711' : '0700';
  assert.equal(mode(dataDir), folder, 'the data dir');
  assert.equal(mode(path.join(dataDir, 'instances')), folder, 'instances/');
  assert.equal(mode(path.join(dataDir, 'instances', 'web')), folder, 'a service folder');
  for (const name of STATE_FILES) assert.equal(mode(path.join(dataDir, name)), '0600', `${name} after open`);

  for (let i = 0; i < 50; i++) kernel.store.saveInstance('web', `t${i}`, 'hibernated', 100);
  kernel.store.db.pragma('wal_checkpoint(PASSIVE)');
  for (const name of STATE_FILES) assert.equal(mode(path.join(dataDir, name)), '0600', `${name} after writes`);
});

test('a looser existing data dir is tightened at start, with a warning naming each path and its old mode; tenant passages keep theirs', { timeout: 60_000 }, async (t) => {
  const dataDir = path.join(parentDir(), 'data');
  // An unusual but supported layout: a service's cwd inside the data dir, which its tenants must reach.
  const appDir = path.join(dataDir, 'apps', 'web');
  const services = { web: { command: 'node app.js', cwd: appDir } };
  mkdirSync(appDir, { recursive: true, mode: 0o755 });
  const first = makeKernel(dataDir, { services });
  await first.start();
  await first.stop();
  const folder = asRoot ? 0o711 : 0o700;
  // What a hand-made or older data dir looks like: world-listable folders, world-readable files.
  const loose: Array<[string, number, number]> = [
    [dataDir, 0o755, folder],
    [path.join(dataDir, 'instances'), 0o777, folder],
    [path.join(dataDir, 'instances', 'web'), 0o755, folder],
    [path.join(dataDir, 'tenement.db'), 0o644, 0o600],
    [path.join(dataDir, 'admin.token'), 0o644, 0o600],
    // A folder only Tenement reads (compiled wasm, runsc state, a plugin's own): nobody else's business.
    [path.join(dataDir, 'wasm-cache'), 0o755, 0o700],
  ];
  mkdirSync(path.join(dataDir, 'wasm-cache'));
  for (const [file, bits] of loose) chmodSync(file, bits);
  // Folders tenants pass through keep the modes their owners gave them.
  mkdirSync(path.join(dataDir, '.storage'), { mode: 0o711 });
  chmodSync(path.join(dataDir, '.storage'), 0o711);

  const { logger, lines } = capturingLogger();
  await startKernel(t, dataDir, { services, logger });
  for (const [file, bits, fixed] of loose) {
    const warning = lines.find((line) => line.path === file);
    assert.ok(warning, `a warning names ${file}: ${JSON.stringify(lines)}`);
    assert.equal(warning.level, 40, 'logged as a warning');
    assert.equal(warning.mode, `0${bits.toString(8)}`, 'with its old mode');
    assert.equal(mode(file), `0${fixed.toString(8)}`, `${file} is fixed`);
  }
  assert.equal(mode(path.join(dataDir, '.storage')), '0711', '.storage (storage mounts) is a tenant passage');
  assert.equal(mode(path.join(dataDir, 'apps')), '0755', "the folder of a service's cwd is left reachable");
  assert.ok(!lines.some((line) => line.path?.startsWith(path.join(dataDir, 'apps')) || line.path === path.join(dataDir, '.storage')), JSON.stringify(lines));
});

const snoopService = (isolation: 'process' | 'namespace' | 'sandbox', dataDir: string): ServiceInput => ({
  command: `node ${SNOOP_APP}`,
  health: '/health',
  cwd: FIXTURES,
  // Not 'never': a start whose port another test's instance took in the meantime (the listener check refuses
  // it) must be able to start again on another port, as it would in production.
  restart: 'on-failure',
  isolation,
  env: { STATE_DIR: dataDir },
});

interface Attempt {
  ok: boolean;
  code?: string;
  entries?: string[];
}

interface Snoop {
  uid: number;
  listDataDir: Attempt;
  readDb: Attempt;
  readWal: Attempt;
  readAdminToken: Attempt;
  listInstances: Attempt;
  listService: Attempt;
  connectApiSocket: Attempt;
  writeOwnDataDir: Attempt;
}

const TIERS: Array<{ tier: 'process' | 'namespace' | 'sandbox'; skip: string | false }> = [
  { tier: 'process', skip: false },
  { tier: 'namespace', skip: onPath('bwrap') ? false : 'needs bwrap (apt-get install bubblewrap)' },
  { tier: 'sandbox', skip: onPath('runsc') ? false : 'needs runsc (apt-get install runsc)' },
];

describe('a tenant cannot read the state directory', { skip: asRoot ? false : 'needs root: without it tenants run as Tenement\'s own uid', timeout: 180_000 }, () => {
  for (const { tier, skip } of TIERS) {
    test(`${tier} tier: cannot list the data dir, read tenement.db, its WAL or admin.token, list its neighbours or connect to api.sock`, { skip, timeout: 120_000 }, async (t) => {
      const dataDir = path.join(parentDir(), 'data');
      const options = { services: { web: snoopService(tier, dataDir) }, plugins: [...servePlugins, namespaceRuntime, sandboxRuntime, authBearer] };
      // A first run leaves the plugins' folders (.sandbox...), which the second start seals before spawning.
      const first = makeKernel(dataDir, options);
      await first.start();
      await first.stop();
      const kernel = await startKernel(t, dataDir, options);
      for (const id of ['alice', 'bob']) {
        const instance = await kernel.spawnInstance('web', id);
        await waitFor(() => instance.state === 'running', `web:${id} running (last error: ${instance.lastError ?? 'none'})`, 60_000);
        assert.equal(instance.tier, tier);
      }
      const seen = await getJson<Snoop>(kernel, 'alice.web.localhost', '/snoop', { timeoutMs: 60_000 });
      const what = JSON.stringify(seen);
      assert.notEqual(seen.uid, 0, 'the tenant is not root');
      assert.equal(seen.writeOwnDataDir.ok, true, `its own DATA_DIR still works: ${what}`);
      for (const key of ['readDb', 'readWal', 'readAdminToken', 'connectApiSocket'] as const) {
        assert.equal(seen[key].ok, false, `${key} must fail: ${what}`);
      }
      // A tier that hides the data dir behind an empty folder may list that: it must show no state in it.
      for (const name of ['tenement.db', 'admin.token', 'api.sock']) {
        assert.ok(!(seen.listDataDir.entries ?? []).includes(name), `the data dir listing shows ${name}: ${what}`);
      }
      assert.ok(!(seen.listService.entries ?? []).includes('bob'), `alice sees bob's folder: ${what}`);
      if (tier === 'process') {
        // The process tier sees the host's folders: only their modes stop it.
        for (const key of ['listDataDir', 'readDb', 'readWal', 'readAdminToken', 'listInstances', 'listService', 'connectApiSocket'] as const) {
          assert.equal(seen[key].code, 'EACCES', `${key}: ${what}`);
        }
      }
    });
  }
});

test('an empty tenement.db next to earlier state refuses to start with TNM_ERR_STORE naming the file, and is left as it was', { timeout: 60_000 }, async (t) => {
  const dataDir = path.join(parentDir(), 'data');
  const first = makeKernel(dataDir);
  await first.start();
  await first.stop();
  const file = path.join(dataDir, 'tenement.db');
  const token = path.join(dataDir, 'admin.token');
  const tokenBefore = statSync(token).mtimeMs;

  truncateSync(file, 0);
  const empty = await refusal(t, dataDir);
  assert.ok(isTenementError(empty), String(empty));
  assert.equal(empty.code, 'TNM_ERR_STORE');
  assert.ok(empty.message.includes(file), `names the file: ${empty.message}`);
  assert.match(empty.message, /empty \(0 bytes, no tables\) but .*admin\.token exists/);
  assert.match(empty.message, /restore it from a backup/);
  assert.equal(statSync(file).size, 0, 'the database is not written to');
  assert.equal(statSync(token).mtimeMs, tokenBefore, 'the admin token is not rotated');

  // A valid SQLite file without a single table (e.g. a fresh file copied over the real one) is refused too.
  rmSync(file);
  const blank = new Database(file);
  blank.pragma('journal_mode = WAL');
  blank.close();
  const header = await refusal(t, dataDir);
  assert.equal(header.code, 'TNM_ERR_STORE');
  assert.match(header.message, /no tables/);
});

test('an unreadable tenement.db refuses to start with TNM_ERR_STORE saying what to do', { timeout: 60_000 }, async (t) => {
  const dataDir = path.join(parentDir(), 'data');
  mkdirSync(dataDir);
  const file = path.join(dataDir, 'tenement.db');
  writeFileSync(file, 'not a database, '.repeat(512));
  const error = await refusal(t, dataDir);
  assert.equal(error.code, 'TNM_ERR_STORE');
  assert.ok(error.message.includes(file), error.message);
  assert.match(error.message, /not a database/);
  assert.match(error.message, /restore it from a backup; to start over on purpose, move the data dir aside/);
});

test('a brand-new data dir, and a 0-byte tenement.db with nothing else next to it, initialise', { timeout: 60_000 }, async (t) => {
  const fresh = await startKernel(t, path.join(parentDir(), 'data'));
  assert.equal(fresh.store.schemaVersion, MIGRATIONS.at(-1)!.version);
  const dataDir = path.join(parentDir(), 'data');
  mkdirSync(dataDir);
  writeFileSync(path.join(dataDir, 'tenement.db'), '');
  const kernel = await startKernel(t, dataDir);
  assert.equal(kernel.store.schemaVersion, MIGRATIONS.at(-1)!.version);
});
