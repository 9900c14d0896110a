import { spawn } from 'node:child_process';
import { LineSplitter } from '../../core/log-buffer.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { ExitInfo, RunningHandle, SpawnSpec } from '../../core/types.ts';
import { groupOwnsListener } from './listener-owner.ts';
import { processStats, signalGroup, waitGroupGone } from './process-group.ts';

/**
 * Starts the instance as the leader of a new process group (detached), so a stop can signal every process it
 * started. When the leader ends, whatever is left of its group is killed: a crashed app's children must not
 * keep its port or its data.
 */
export function spawnProcess(spec: SpawnSpec): Promise<RunningHandle> {
  return new Promise((resolve, reject) => {
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: { ...process.env, ...spec.env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const stdout = new LineSplitter((line) => spec.onLog('stdout', line));
    const stderr = new LineSplitter((line) => spec.onLog('stderr', line));
    child.stdout.on('data', (chunk: Buffer) => stdout.write(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.write(chunk));

    let exit: ExitInfo | null = null;
    const exitWaiters: Array<(exit: ExitInfo) => void> = [];
    let stopping = false;

    child.once('error', (error: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return;
      const hint = error.code === 'ENOENT' ? `command not found: ${spec.command} (cwd ${spec.cwd})` : error.message;
      reject(new TenementError(ErrorCodes.SPAWN_FAILED, `cannot start ${spec.service}:${spec.id}: ${hint}`, { cause: error }));
    });

    child.once('exit', (code, signal) => {
      exit = { code, signal };
      stdout.end();
      stderr.end();
      // During a graceful stop the rest of the group gets its grace period; otherwise it goes now.
      if (!stopping && child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
      spec.onExit(exit);
      for (const waiter of exitWaiters.splice(0)) waiter(exit);
    });

    child.once('spawn', () => {
      const pid = child.pid!;
      const exited = (): Promise<ExitInfo> =>
        exit ? Promise.resolve(exit) : new Promise((done) => exitWaiters.push(done));

      resolve({
        pid,
        pgid: pid,
        address: { host: spec.host, port: spec.port },
        async stop({ graceMs }) {
          stopping = true;
          const deadline = Date.now() + graceMs;
          signalGroup(pid, graceMs > 0 ? 'SIGTERM' : 'SIGKILL');
          const leaderGone = await Promise.race([
            exited().then(() => true),
            new Promise<false>((done) => setTimeout(() => done(false), graceMs).unref()),
          ]);
          if (leaderGone) await waitGroupGone(pid, deadline);
          // Whatever ignored SIGTERM, leader or grandchild, is killed; then we wait until the group is empty.
          signalGroup(pid, 'SIGKILL');
          const result = await exited();
          await waitGroupGone(pid, Date.now() + 5_000);
          return result;
        },
        async stats() {
          return processStats(pid);
        },
        async ownsAddress() {
          return groupOwnsListener(pid, spec.port);
        },
      });
    });
  });
}
