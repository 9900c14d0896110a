/**
 * The host processes of one sandbox: the leader is `runsc run` (attached); below it the gofer (in its process
 * group), the sentry `runsc-sandbox` (its own session; it dies with `runsc run` through its parent-death
 * signal) and the ptrace stubs that hold the app's memory. The app's own processes exist only inside the
 * sentry: the host sees none of them. So the instance's stats are the whole tree's (runsc, gofer, sentry,
 * stubs), and with --network=host, where the sentry opens the app's sockets on the host, so is its listener
 * (core/process/tree.ts).
 */
import { readFileSync } from 'node:fs';
import { processesOwnUnixListener } from '../../core/process/listener-owner.ts';
import { processTree } from '../../core/process/tree.ts';

/**
 * With --host-uds=create the gofer creates and binds the app's socket on the host and hands it to the sentry.
 * The gofer runs in an empty network namespace of its own, and Unix sockets are listed per namespace: the
 * socket shows in the gofer's list, not in the instance's (`netDir`), so every namespace of the tree is read.
 */
export function sandboxOwnsSocket(leader: number, socketPath: string, netDir: string): boolean | null {
  return treeOwnsSocket(processTree(leader), socketPath, netDir);
}

/** The same for a given set of host processes (a sandbox whose processes are not all below one leader). */
export function treeOwnsSocket(tree: readonly number[], socketPath: string, netDir: string): boolean | null {
  let answer = processesOwnUnixListener(tree, socketPath, netDir);
  for (const pid of tree) {
    if (answer === true) return true;
    const here = processesOwnUnixListener(tree, socketPath, `/proc/${pid}/net`);
    if (here !== null) answer = here;
  }
  return answer;
}

/** Whether a process runs (a zombie, dead but not yet reaped, does not). */
export function alive(pid: number): boolean {
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
