import { readFileSync } from 'node:fs';
import { descendants, processStats } from '../../core/process/group.ts';
import { processesOwnListener, processesOwnUnixListener } from '../../core/process/listener-owner.ts';
import type { InstanceStats } from '../../core/types.ts';

/**
 * The host processes of one sandbox: the leader is `runsc run` (attached); below it the gofer (in its process
 * group), the sentry `runsc-sandbox` (its own session; it dies with `runsc run` through its parent-death
 * signal) and the ptrace stubs that hold the app's memory. The app's own processes exist only inside the
 * sentry: the host sees none of them.
 */
export function sandboxProcesses(leader: number): number[] {
  return [leader, ...descendants(leader)];
}

/** Memory and CPU of the whole sandbox tree (runsc, gofer, sentry, stubs): what the instance costs the host. */
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

/** With --network=host the sentry opens the app's sockets on the host: the listener is held by the tree. */
export function sandboxOwnsListener(leader: number, port: number, netDir: string): boolean | null {
  return processesOwnListener(sandboxProcesses(leader), port, netDir);
}

/**
 * With --host-uds=create the gofer creates and binds the app's socket on the host and hands it to the sentry.
 * The gofer runs in an empty network namespace of its own, and Unix sockets are listed per namespace: the
 * socket shows in the gofer's list, not in the instance's (`netDir`), so every namespace of the tree is read.
 */
export function sandboxOwnsSocket(leader: number, socketPath: string, netDir: string): boolean | null {
  const tree = sandboxProcesses(leader);
  let answer = processesOwnUnixListener(tree, socketPath, netDir);
  for (const pid of tree) {
    if (answer === true) return true;
    const here = processesOwnUnixListener(tree, socketPath, `/proc/${pid}/net`);
    if (here !== null) answer = here;
  }
  return answer;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Resolves true once none of `pids` is alive (zombies do not count), false at the deadline. */
export async function waitGone(pids: readonly number[], deadline: number): Promise<boolean> {
  for (let pause = 5; pids.some(alive); pause = Math.min(50, pause * 2)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
  return true;
}

export function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}
