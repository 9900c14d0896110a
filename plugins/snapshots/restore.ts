/**
 * Bringing a suspended instance back: `criu restore` run as root (it sets the tenant's credentials from the
 * image) and not detached, so CRIU stays the restored process's parent: it reaps it and its exit is the
 * instance's, which is how the handle learns the instance ended. The restored process's stdout and stderr are
 * CRIU's own, inherited (`--inherit-fd`), so its output reaches the instance log as a spawned one's does.
 * Success is CRIU's post-resume action, not the pid file (written before a restore that can still fail).
 */
import type { ChildProcess } from 'node:child_process';
import { processStats, signalGroup, waitGroupGone } from '../../core/process/group.ts';
import { groupOwnsListener } from '../../core/process/listener-owner.ts';
import type { ExitInfo, RunningHandle, SpawnSpec } from '../../core/types.ts';
import { joinCgroups, openGate, spawnRestore, uidOf, waitResumed, writeResumeScript } from './criu-restore.ts';
import type { ImageMeta } from './images.ts';

function killRestore(criu: ChildProcess, pid: number): void {
  if (criu.pid !== undefined) signalGroup(criu.pid, 'SIGKILL');
  signalGroup(pid, 'SIGKILL');
}

/**
 * Restores `dir` for `spec`; resolves with its handle once it runs again, or throws with CRIU's reason. `ready`:
 * what must be done before the restored process runs (it runs while CRIU restores; the tasks are resumed only
 * once it settled, and not at all when it failed, which is then the reason thrown).
 */
export async function restoreInstance(spec: SpawnSpec, dir: string, meta: ImageMeta, expectedUid: number, timeoutMs: number, ready?: Promise<void>): Promise<RunningHandle> {
  const script = writeResumeScript(dir, ready !== undefined);
  let readyError: unknown = null;
  ready?.then(
    () => openGate(dir, true),
    (error: unknown) => {
      readyError = error;
      openGate(dir, false);
    },
  );
  const args = ['restore', '-D', dir, '-o', 'restore.log', '--tcp-close', '--action-script', script, '--inherit-fd', `fd[1]:${meta.stdout}`, '--inherit-fd', `fd[2]:${meta.stderr}`];
  const run = spawnRestore(spec, args, [], () => signalGroup(meta.pid, 'SIGKILL'));
  const criu = run.process;
  // A file check costs microseconds: polled often, every millisecond of lag is added to the pause or the wake.
  try {
    await waitResumed(run, dir, timeoutMs, { first: 2, max: 10 }, () => killRestore(criu, meta.pid));
  } catch (error) {
    // CRIU stopped at the gate: what failed before it is the reason.
    await ready?.catch(() => undefined);
    throw readyError ?? error;
  }
  // An image is only ever restored into its own tenant's uid: whatever the image says, check the process.
  const uid = uidOf(meta.pid);
  if (uid !== expectedUid) {
    killRestore(criu, meta.pid);
    throw new Error(`the restored process runs as uid ${uid ?? '?'}, not the instance's ${expectedUid}: killed`);
  }
  run.resumed = true;
  if (run.exit) {
    spec.onExit(run.exit);
    throw new Error('the restored process ended at once');
  }
  joinCgroups(spec, meta.pid);
  const pid = meta.pid;
  const exited = (): Promise<ExitInfo> => run.exited();
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
