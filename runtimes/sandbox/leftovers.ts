import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { descendants } from '../../core/process/group.ts';
import { listContainers, runsc, sandboxPid, type SandboxPaths } from './runsc.ts';
import { killAll, waitGone } from './sandbox-tree.ts';

/**
 * Containers of a previous run on this data directory (Tenement crashed or was killed -9: its attached
 * `runsc run`s may still be running, or have left state behind). Nothing here belongs to the new run, so
 * every sentry is killed, its state deleted, and the bundles removed. Returns the ids found.
 */
export async function removeLeftovers(runscPath: string, paths: SandboxPaths): Promise<string[]> {
  if (!existsSync(paths.state)) {
    await rm(paths.bundles, { recursive: true, force: true });
    return [];
  }
  const ids = await listContainers(runscPath, paths.state);
  for (const id of ids) {
    // SIGKILL from the host, not `runsc kill`: a sentry in a private network namespace has its control
    // socket there, and that namespace may be gone. The sentry's stubs die with it.
    const pid = await sandboxPid(runscPath, paths.state, id);
    if (pid !== null) {
      const tree = [pid, ...descendants(pid)];
      killAll(tree);
      await waitGone(tree, Date.now() + 5_000);
    }
    await runsc(runscPath, paths.state, ['delete', '-force', id]);
  }
  await rm(paths.bundles, { recursive: true, force: true });
  return ids;
}
