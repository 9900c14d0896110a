// `ten serve` as a real child process: crash it with kill -9 and start it again, or stop it with SIGTERM.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { findOrphans, signalQuietly } from '../../core/orphans.ts';
import { alive, ECHO_APP, freePort, gone, procState, request, ROOT, sleep, waitFor } from '../helpers.ts';

/** Running (or sleeping), not merely a zombie. */
const running = (pid: number): boolean => alive(pid) && procState(pid) !== 'Z';

interface Serve {
  child: ChildProcess;
  url: string;
  output: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children = new Set<ChildProcess>();
const dataDirs = new Set<string>();

/** Starts `node bin/ten.mjs serve --config file` and resolves once it is serving. */
async function startServe(configFile: string, port: number): Promise<Serve> {
  const env: NodeJS.ProcessEnv = { ...process.env, TENEMENT_LOG_LEVEL: 'debug' };
  delete env.NODE_TEST_CONTEXT;
  delete env.TENEMENT_CONFIG;
  delete env.TENEMENT_DATA_DIR;
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'ten.mjs'), 'serve', '--config', configFile], {
    cwd: path.dirname(configFile),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      children.delete(child);
      resolve({ code, signal });
    }),
  );
  let exited = false;
  void exit.then(() => (exited = true));
  await waitFor(() => exited || output.includes('tenement serving'), 'ten serve to start serving', 60_000);
  assert.ok(!exited, `ten serve exited during start-up:\n${output}`);
  return { child, url: `http://127.0.0.1:${port}`, output: () => output, exit };
}

async function stopServe(serve: Serve, signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  serve.child.kill(signal);
  return serve.exit;
}

interface Row {
  service: string;
  id: string;
  desired: string;
  pid: number | null;
}

/** The desired state `ten serve` persisted, read straight from its database. */
function storedInstances(dataDir: string): Map<string, Row> {
  const db = new Database(path.join(dataDir, 'tenement.db'), { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const rows = db.prepare('SELECT service, id, desired, pid FROM instances').all() as Row[];
    return new Map(rows.map((r) => [`${r.service}:${r.id}`, r]));
  } finally {
    db.close();
  }
}

/** Live (non-zombie) processes started for instances under this data directory, by `service:id`. */
function instanceProcesses(dataDir: string): Map<string, number[]> {
  const byKey = new Map<string, number[]>();
  for (const p of findOrphans(path.join(dataDir, 'instances'))) {
    if (!running(p.pid)) continue;
    const key = `${p.service}:${p.id}`;
    byKey.set(key, [...(byKey.get(key) ?? []), p.pid]);
  }
  return byKey;
}

async function pidOf(url: string, host: string): Promise<number> {
  const reply = await request(url, host, '/pid');
  assert.equal(reply.status, 200, `${host}: ${reply.body}`);
  return Number(reply.body);
}

function setup(): { dir: string; dataDir: string; configFile: string; port: Promise<number> } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-recovery-'));
  // Like a project folder: run as root, tenants run as their own uid and must reach the data dir inside.
  chmodSync(dir, 0o755);
  const dataDir = path.join(dir, 'data');
  dataDirs.add(dir);
  const configFile = path.join(dir, 'tenement.config.json');
  const port = freePort().then((port) => {
    const config = {
      settings: { port, dataDir: './data', domain: 'localhost' },
      services: {
        // A long stopTimeout: a stop that finishes well before it was graceful, not a SIGKILL at the deadline.
        echo: { command: `node ${ECHO_APP}`, health: '/health', idleTimeout: false, stopTimeout: '30s' },
        sleepy: { command: `node ${ECHO_APP}`, health: '/health', idleTimeout: '300ms', stopTimeout: '30s' },
      },
      instances: { echo: ['a', 'b'], sleepy: ['c'] },
    };
    writeFileSync(configFile, JSON.stringify(config, null, 2));
    return port;
  });
  return { dir, dataDir, configFile, port };
}

// Whatever a failed test left: serve processes, then any instance process under our data directories.
after(() => {
  for (const child of children) child.kill('SIGKILL');
  for (const dir of dataDirs) {
    for (const p of findOrphans(path.join(dir, 'data', 'instances'))) {
      signalQuietly(-p.pgid, 'SIGKILL');
      signalQuietly(p.pid, 'SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

describe('ten serve recovery', { timeout: 240_000 }, () => {
  test('after kill -9 of ten serve, the next run kills the orphans, restores running instances and keeps hibernated ones asleep', async (t) => {
    const { dataDir, configFile, port: portReady } = setup();
    const port = await portReady;
    let serve = await startServe(configFile, port);
    try {
      const a1 = await pidOf(serve.url, 'a.echo.localhost');
      const b1 = await pidOf(serve.url, 'b.echo.localhost');
      const grandchild = await request(serve.url, 'a.echo.localhost', '/spawn-child');
      assert.equal(grandchild.status, 200);
      const g1 = Number(grandchild.body);
      assert.ok(running(g1));

      // sleepy:c was started at boot and falls asleep after 300ms idle.
      await waitFor(
        () => storedInstances(dataDir).get('sleepy:c')?.desired === 'hibernated',
        'sleepy:c to be stored as hibernated',
        30_000,
      );
      await waitFor(() => !instanceProcesses(dataDir).has('sleepy:c'), 'sleepy:c to have no process', 30_000);

      // Crash: the instances outlive their supervisor.
      const killed = await stopServe(serve, 'SIGKILL');
      assert.equal(killed.signal, 'SIGKILL');
      assert.ok(running(a1) && running(b1) && running(g1), 'instances and their children are orphans still running');
      const orphans = instanceProcesses(dataDir);
      assert.deepEqual(orphans.get('echo:a')?.sort(), [a1, g1].sort());
      assert.deepEqual(orphans.get('echo:b'), [b1]);
      assert.equal(orphans.has('sleepy:c'), false);
      const stored = storedInstances(dataDir);
      assert.equal(stored.get('echo:a')?.desired, 'running');
      assert.equal(stored.get('echo:b')?.desired, 'running');
      assert.equal(stored.get('sleepy:c')?.desired, 'hibernated');

      serve = await startServe(configFile, port);
      assert.match(serve.output(), /killed processes left by a previous run/);
      await waitFor(() => gone(a1) && gone(b1) && gone(g1), 'the orphans to be killed', 15_000);

      const a2 = await pidOf(serve.url, 'a.echo.localhost');
      const b2 = await pidOf(serve.url, 'b.echo.localhost');
      assert.ok(![a1, b1, g1].includes(a2) && ![a1, b1, g1].includes(b2), 'running instances came back on new processes');
      assert.notEqual(a2, b2);

      // The hibernated instance stays asleep until someone asks for it.
      await sleep(700);
      assert.equal(instanceProcesses(dataDir).has('sleepy:c'), false, 'sleepy:c was not spawned at boot');
      assert.equal(storedInstances(dataDir).get('sleepy:c')?.desired, 'hibernated');
      assert.doesNotMatch(serve.output(), /"instance":"sleepy:c","event":"(starting|spawned|waking)"/);
      const c = await pidOf(serve.url, 'c.sleepy.localhost');
      assert.ok(running(c));
      // The log line travels through the child's stdout pipe: it may arrive after the response does.
      await waitFor(() => /"instance":"sleepy:c","event":"woken"/.test(serve.output()), 'the woken event in the log of ten serve', 10_000);

      const processes = instanceProcesses(dataDir);
      const all = [...processes.values()].flat();
      const clean = await stopServe(serve, 'SIGTERM');
      assert.equal(clean.code, 0, serve.output());
      for (const pid of all) assert.ok(gone(pid), `${pid} is gone after the clean shutdown`);
    } catch (error) {
      t.diagnostic(serve.output());
      throw error;
    } finally {
      if (serve.child.exitCode === null && serve.child.signalCode === null) await stopServe(serve, 'SIGKILL');
    }
  });

  test('SIGTERM to ten serve stops every instance gracefully and exits 0, keeping desired state', async (t) => {
    const { dataDir, configFile, port: portReady } = setup();
    const port = await portReady;
    const serve = await startServe(configFile, port);
    try {
      const a = await pidOf(serve.url, 'a.echo.localhost');
      const b = await pidOf(serve.url, 'b.echo.localhost');
      const c = await pidOf(serve.url, 'c.sleepy.localhost');
      const grandchild = Number((await request(serve.url, 'b.echo.localhost', '/spawn-child')).body);
      assert.ok(running(grandchild));
      const pids = [a, b, c, grandchild];

      const started = Date.now();
      const exit = await stopServe(serve, 'SIGTERM');
      t.diagnostic(`ten serve stopped in ${Date.now() - started}ms`);
      assert.equal(exit.code, 0, serve.output());
      assert.equal(exit.signal, null);
      for (const pid of pids) assert.ok(gone(pid), `${pid} is gone`);
      assert.equal(instanceProcesses(dataDir).size, 0, 'no process of any instance is left');
      // Graceful: the apps took SIGTERM and exited rather than being killed at the deadline (stopTimeout 30s).
      assert.ok(Date.now() - started < 20_000, 'nobody needed the SIGKILL fallback');
      // A shutdown is not a removal: the next run brings the same instances back.
      const stored = storedInstances(dataDir);
      assert.equal(stored.get('echo:a')?.desired, 'running');
      assert.equal(stored.get('echo:b')?.desired, 'running');
    } catch (error) {
      t.diagnostic(serve.output());
      throw error;
    } finally {
      if (serve.child.exitCode === null && serve.child.signalCode === null) await stopServe(serve, 'SIGKILL');
    }
  });
});
