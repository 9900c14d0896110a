/**
 * Named snapshots wired into the plugin (docs/snapshots.md): the API routes, the restore as the instance's next
 * spawn (a `spawn` tap for the process tier ahead of suspend's, so the wake queue's one start per herd is one
 * restore per herd), and the snapshots' removal with their instance.
 */
import { rmSync } from 'node:fs';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { ServiceConfig } from '../../core/config/schema.ts';
import type { RunningHandle, SpawnSpec } from '../../core/types.ts';
import { imageDir, imageOwnerUid, removeImage } from './images.ts';
import { NamedSnapshots } from './manager.ts';
import { snapshotRoutes } from './named-routes.ts';
import { restoreInstance } from './restore.ts';

/** Why a service's instances cannot be snapshotted (the same tiers as suspend: index.ts), or null. */
export function namedRefusal(config: ServiceConfig | undefined): string | null {
  if (!config) return 'no such service';
  if (config.isolation !== 'process') {
    return `isolation '${config.isolation}' cannot be snapshotted: only the process tier can (namespace, sandbox and microvm instances are not plain host processes CRIU is set up for yet; wasm instances live inside Tenement)`;
  }
  if (config.listen === 'socket') return "listen: 'socket' cannot be snapshotted: the socket's path is removed before each start, and a restored listener would lose it";
  return null;
}

export function setupNamedSnapshots(ctx: PluginContext, criuProblem: () => Promise<string | null>): NamedSnapshots {
  const named = new NamedSnapshots(ctx, (service) => namedRefusal(ctx.services.get(service)), criuProblem);
  snapshotRoutes(ctx, named);

  ctx.hooks.spawn.for('process').tap(
    async (spec: SpawnSpec): Promise<RunningHandle | undefined> => {
      const pending = await named.takePending(spec);
      if (!pending) return undefined;
      const key = `${spec.service}:${spec.id}`;
      const started = Date.now();
      try {
        const problem = await criuProblem();
        if (problem) throw new Error(problem);
        if (spec.netns) throw new Error('the instance now runs in a network namespace');
        const meta = pending.image;
        const expectedUid = imageOwnerUid(meta, spec);
        // At most half the startupTimeout: a restore that fails must leave the cold start time to answer.
        const handle = await restoreInstance(spec, `${pending.work}/image`, meta, expectedUid, Math.min(spec.config.startupTimeout / 2, 15_000));
        const restoreMs = Date.now() - started;
        ctx.log.info({ instance: key, snapshot: pending.name, restoreMs, pid: handle.pid }, 'snapshot restored');
        pending.settle({ restored: true, reason: null, restoreMs });
        return handle;
      } catch (error) {
        const reason = (error as Error).message;
        ctx.log.warn({ instance: key, snapshot: pending.name, reason }, 'snapshot restore failed: starting cold on its DATA_DIR');
        pending.settle({ restored: false, reason, restoreMs: Date.now() - started });
        // A suspension's image taken meanwhile is older than the snapshot's DATA_DIR: never restored over it.
        removeImage(imageDir(ctx.paths.dataDir, spec.service, spec.id));
        return undefined;
      } finally {
        rmSync(`${pending.work}/image`, { recursive: true, force: true });
      }
    },
    { stage: -60 },
  );

  ctx.instances.watch((event) => {
    if (event.type === 'removed') named.removed(event.service, event.id);
  });
  return named;
}
