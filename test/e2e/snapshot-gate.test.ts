// A gated restore (plugins/snapshots/restore.ts, used by a live move's target): what the restored process needs
// (its DATA_DIR handed to its uid) runs while CRIU restores, and the tasks resume only once it is done. Real CRIU:
// a Node server is dumped, then restored twice: with a gate that fails (the restore fails with that reason and
// nothing of the image runs) and with a gate opened late (a request sent meanwhile is answered only after it).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { criuPath, criuStatus } from '../../plugins/snapshots/criu.ts';
import type { ImageMeta } from '../../plugins/snapshots/images.ts';
import { restoreInstance } from '../../plugins/snapshots/restore.ts';
import type { SpawnSpec } from '../../core/types.ts';
import { dumpableNode, NO_DUMPABLE_NODE } from '../dumpable-node.ts';

const status = await criuStatus();
// The app runs on a Node CRIU can dump: on Node 24 (CI's second run) process.execPath maps io_uring rings.
const NODE = status.usable ? dumpableNode() : null;
const skip =
  process.getuid?.() !== 0
    ? 'needs root (criu dump and restore)'
    : !status.usable
      ? `CRIU is not usable here: ${status.reason} (npm run fetch:criu)`
      : NODE === null
        ? NO_DUMPABLE_NODE
        : false;

const APP = `import http from 'node:http';
const boot = Date.now();
http.createServer((req, res) => res.end(String(boot))).listen(Number(process.env.PORT), '127.0.0.1', () => process.stdout.write('up\\n'));
`;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n'));
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString()));
    socket.on('end', () => resolve(text.split('\r\n\r\n')[1] ?? ''));
    socket.on('error', reject);
    socket.setTimeout(30_000, () => socket.destroy(new Error('no answer in 30 s')));
  });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test('a gated restore resumes only once its gate opened, and not at all when it failed', { skip, timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tnm-gate-'));
  const port = await freePort();
  writeFileSync(path.join(dir, 'app.mjs'), APP);
  const app = spawn(NODE!, [path.join(dir, 'app.mjs')], { env: { PORT: String(port), PATH: process.env.PATH }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let restoredPid = 0;
  t.after(() => {
    for (const pid of [app.pid, restoredPid]) if (pid && alive(pid)) process.kill(-pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await new Promise<void>((resolve) => app.stdout!.once('data', () => resolve()));
  const pid = app.pid!;
  const booted = await get(port);
  const images = (name: string): string => path.join(dir, name);
  const image = images('image');
  const meta: ImageMeta = { service: 'app', id: 'a', uid: 0, gid: 0, pid, host: '127.0.0.1', port, stdout: readlinkSync(`/proc/${pid}/fd/1`), stderr: readlinkSync(`/proc/${pid}/fd/2`), dumpMs: 0, bytes: 0, at: Date.now() };
  const exited = new Promise<void>((resolve) => app.once('exit', () => resolve()));
  mkdirSync(image, { mode: 0o700 });
  const dump = spawn(criuPath(), ['dump', '-t', String(pid), '-D', image, '-o', 'dump.log', '--tcp-close', '--shell-job', '--external', `unix[${meta.stdout.slice(8, -1)}]`, '--external', `unix[${meta.stderr.slice(8, -1)}]`], { stdio: 'ignore' });
  assert.equal(await new Promise((resolve) => dump.once('exit', resolve)), 0, 'criu dump');
  await exited;
  // Two copies of the image, one per restore.
  for (const name of ['failed-img', 'late-img']) cpSync(image, images(name), { recursive: true });
  const logs: string[] = [];
  const spec = { service: 'app', id: 'a', onLog: (_stream: string, line: string) => logs.push(line), onExit: () => undefined, cgroupProcs: [] } as unknown as SpawnSpec;

  // A gate that fails: the restore fails with its reason, and the image's process does not run.
  await assert.rejects(restoreInstance(spec, images('failed-img'), meta, 0, 30_000, Promise.reject(new Error('DATA_DIR could not be handed over'))), /DATA_DIR could not be handed over/);
  // Killed by CRIU (at most a zombie until its new parent reaps it, which the next restore of the pid waits for).
  const state = (): string | null => {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    } catch {
      return null;
    }
  };
  assert.ok(state() === null || state() === 'Z', `nothing of the failed restore runs (state ${state()})`);
  for (const deadline = Date.now() + 10_000; state() !== null && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 10));

  // A gate opened late: a request sent before it opens is answered after, by the restored process.
  let open!: () => void;
  let openedAt = 0;
  const gate = new Promise<void>((resolve) => (open = resolve)).then(() => void (openedAt = performance.now()));
  const restoring = restoreInstance(spec, images('late-img'), meta, 0, 60_000, gate);
  // The listening socket is back before the tasks resume: a connection is accepted, its answer waits for the gate.
  const socket = await new Promise<net.Socket>((resolve, reject) => {
    const deadline = Date.now() + 30_000;
    const attempt = (): void => {
      const s = net.connect(port, '127.0.0.1', () => resolve(s));
      s.once('error', () => (Date.now() > deadline ? reject(new Error('the restored socket never listened')) : setTimeout(attempt, 5)));
    };
    attempt();
  });
  let answeredAt = 0;
  const answer = new Promise<string>((resolve, reject) => {
    let text = '';
    socket.on('data', (chunk) => (text += chunk.toString()));
    socket.on('end', () => {
      answeredAt = performance.now();
      resolve(text.split('\r\n\r\n')[1] ?? '');
    });
    socket.on('error', reject);
    socket.write('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
  });
  // Long enough for an ungated restore to have resumed and answered (~50-100 ms here).
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal(answeredAt, 0, 'nothing answered while the gate was closed');
  open();
  const handle = await restoring;
  restoredPid = handle.pid!;
  assert.equal(handle.pid, pid, 'restored under its own pid');
  assert.equal(await answer, booted, 'the restored process answered, with its memory (its boot time)');
  assert.ok(answeredAt >= openedAt, 'answered after the gate opened');
  await handle.stop({ graceMs: 0 });
});
