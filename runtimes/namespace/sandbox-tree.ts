import { descendants, processStats, signalGroup } from '../../core/process/group.ts';
import { processesOwnListener } from '../../core/process/listener-owner.ts';
import type { InstanceStats } from '../../core/types.ts';

/**
 * The process tree of one sandbox: the leader is the outer bwrap; its child is bwrap's init (pid 1 of the new
 * pid namespace); the app and whatever it starts are below that (orphans are reparented to that init, so they
 * stay in the tree). The app runs in its own session (--new-session), so it is not in the leader's group.
 */
export function sandboxProcesses(leader: number): number[] {
  return [leader, ...descendants(leader)];
}

/**
 * SIGTERM for the app, not for bwrap: a signalled outer bwrap dies at once and takes the namespace with it
 * (SIGKILL through --die-with-parent), so the app would never get its graceful stop.
 */
export function terminateSandbox(leader: number): void {
  // The leader's only child is bwrap's init; everything below it is the tenant's.
  const init = descendants(leader)[0];
  const apps = init === undefined ? [] : descendants(init);
  if (apps.length === 0) {
    signalGroup(leader, 'SIGTERM');
    return;
  }
  for (const pid of apps) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
  }
}

export function sandboxOwnsListener(leader: number, port: number, netDir: string): boolean | null {
  return processesOwnListener(sandboxProcesses(leader), port, netDir);
}

/** Memory and CPU of the whole sandbox (bwrap's two processes are about 3.5 MB). */
export function sandboxStats(leader: number): InstanceStats {
  let memoryBytes: number | null = null;
  let cpuSeconds: number | null = null;
  for (const pid of sandboxProcesses(leader)) {
    const stats = processStats(pid);
    if (stats.memoryBytes !== null) memoryBytes = (memoryBytes ?? 0) + stats.memoryBytes;
    if (stats.cpuSeconds !== null) cpuSeconds = (cpuSeconds ?? 0) + stats.cpuSeconds;
  }
  return { pid: leader, memoryBytes, cpuSeconds };
}
