/**
 * Bringing a suspended instance back: `criu restore` run as root (it sets the tenant's credentials from the
 * image) and not detached, so CRIU stays the restored process's parent: it reaps it and its exit is the
 * instance's, which is how the handle learns the instance ended. The restored process's stdout and stderr are
 * CRIU's own, inherited (`--inherit-fd`), so its output reaches the instance log as a spawned one's does.
 * Success is CRIU's post-resume action, not the pid file (written before a restore that can still fail).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import path from 'node:path';
import { descendants, processStats, signalGroup, waitGroupGone } from '../../core/process/group.ts';
import { groupOwnsListener } from '../../core/process/listener-owner.ts';
import { LineSplitter } from '../../core/log-buffer.ts';
import type { ExitInfo, RunningHandle, SpawnSpec } from '../../core/types.ts';
import { criuPath } from './criu.ts';
import { logTail } from './dump.ts';
import type { ImageMeta } from './images.ts';

const RESUMED = 'resumed';
const SCRIPT = 'on-resume.sh';

/** The uid a process runs as (real, effective, saved and fs all the same), or null when they differ or it is gone. */
function uidOf(pid: number): number | null {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'));
    const ids = line?.slice(4).trim().split(/\s+/).map(Number) ?? [];
    return ids.length === 4 && ids.every((id) => id === ids[0]) ? ids[0]! : null;
  } catch {
    return null;
  }
}

function killRestore(criu: ChildProcess, pid: number): void {
  if (criu.pid !== undefined) signalGroup(criu.pid, 'SIGKILL');
  signalGroup(pid, 'SIGKILL');
}

/** Restores `dir` for `spec`; resolves with its handle once it runs again, or throws with CRIU's reason. */
export async function restoreInstance(spec: SpawnSpec, dir: string, meta: ImageMeta, expectedUid: number, timeoutMs: number): Promise<RunningHandle> {
  writeFileSync(path.join(dir, SCRIPT), `#!/bin/sh\n[ "$CRTOOLS_SCRIPT_ACTION" = post-resume ] && : > '${path.join(dir, RESUMED)}'\nexit 0\n`, { mode: 0o700 });
  chmodSync(path.join(dir, SCRIPT), 0o700);
  const args = ['restore', '-D', dir, '-o', 'restore.log', '--tcp-close', '--action-script', path.join(dir, SCRIPT), '--inherit-fd', `fd[1]:${meta.stdout}`, '--inherit-fd', `fd[2]:${meta.stderr}`];
  const criu = spawn(criuPath(), args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  let exit: ExitInfo | null = null;
  const exitWaiters: Array<(exit: ExitInfo) => void> = [];
  let spawnError: Error | null = null;
  criu.once('error', (error) => {
    spawnError = error;
  });
  const stdout = new LineSplitter((line) => spec.onLog('stdout', line));
  const stderr = new LineSplitter((line) => spec.onLog('stderr', line));
  criu.stdout?.on('data', (chunk: Buffer) => stdout.write(chunk));
  criu.stderr?.on('data', (chunk: Buffer) => stderr.write(chunk));
  let resumed = false;
  criu.once('exit', (code, signal) => {
    exit = { code, signal };
    stdout.end();
    stderr.end();
    signalGroup(meta.pid, 'SIGKILL');
    if (resumed) spec.onExit(exit);
    for (const waiter of exitWaiters.splice(0)) waiter(exit);
  });

  const deadline = Date.now() + timeoutMs;
  // A file check costs microseconds: polled often, every millisecond of lag is added to the pause or the wake.
  for (let pause = 2; !existsSync(path.join(dir, RESUMED)); pause = Math.min(10, pause * 2)) {
    if (spawnError || exit || Date.now() >= deadline) {
      killRestore(criu, meta.pid);
      const why = spawnError ? String(spawnError) : exit ? logTail(path.join(dir, 'restore.log')) || `criu exited with ${JSON.stringify(exit)}` : `not restored within ${timeoutMs}ms`;
      throw new Error(`criu restore failed: ${why}`);
    }
    await new Promise((done) => setTimeout(done, pause));
  }
  // An image is only ever restored into its own tenant's uid: whatever the image says, check the process.
  const uid = uidOf(meta.pid);
  if (uid !== expectedUid) {
    killRestore(criu, meta.pid);
    throw new Error(`the restored process runs as uid ${uid ?? '?'}, not the instance's ${expectedUid}: killed`);
  }
  resumed = true;
  if (exit) {
    spec.onExit(exit);
    throw new Error('the restored process ended at once');
  }
  // The limits plugin's cgroups: a restored tree joins them as a spawned one does.
  for (const procs of spec.cgroupProcs ?? []) {
    for (const pid of [meta.pid, ...descendants(meta.pid)]) {
      try {
        writeFileSync(procs, String(pid));
      } catch {
        // A process that ended meanwhile.
      }
    }
  }
  const pid = meta.pid;
  const exited = (): Promise<ExitInfo> => (exit ? Promise.resolve(exit) : new Promise((done) => exitWaiters.push(done)));
  return {
    pid,
    pgid: pid,
    keepsOwnPort: true,
    address: { host: meta.host, port: meta.port },
    async stop({ graceMs }) {
      const end = Date.now() + graceMs;
      signalGroup(pid, graceMs <= 0 ? 'SIGKILL' : 'SIGTERM');
      await Promise.race([exited(), new Promise((done) => setTimeout(done, Math.max(0, graceMs)).unref())]);
      await waitGroupGone(pid, end);
      killRestore(criu, pid);
      const result = await exited();
      await waitGroupGone(pid, Date.now() + 5_000);
      return result;
    },
    async stats() {
      return processStats(pid);
    },
    async ownsAddress() {
      return groupOwnsListener(pid, meta.port, '/proc/net');
    },
  };
}
