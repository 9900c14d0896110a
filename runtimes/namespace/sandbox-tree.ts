/**
 * The process tree of one sandbox: the leader is the outer bwrap; its child is bwrap's init (pid 1 of the new
 * pid namespace); the app and whatever it starts are below that (orphans are reparented to that init, so they
 * stay in the tree). The app runs in its own session (--new-session), so it is not in the leader's group.
 * Its stats and listener are the whole tree's (core/process/tree.ts; bwrap's two processes are about 3.5 MB).
 */
import { descendants, signalGroup } from '../../core/process/group.ts';

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
