/**
 * Suspend-depth hibernation for the namespace tier (docs/snapshots.md, "The namespace tier"): the same life as
 * the process tier's (index.ts), with the sandbox's tree dumped from bwrap's init (sandbox-dump.ts) and restored
 * with its namespaces (sandbox-restore.ts). A sandbox in a network namespace of its own (`network: 'private' |
 * 'none'`) is stopped, not suspended.
 */
import { renameSync, rmSync } from 'node:fs';
import type { ServiceConfig } from '../../core/config/schema.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { RunningHandle, SpawnSpec } from '../../core/types.ts';
import { hasImage, imageDir, prepareParent, readMeta, removeImage, take } from './images.ts';
import { sandboxInit } from './sandbox-plan.ts';
import { dumpSandbox } from './sandbox-dump.ts';
import { restoreSandbox } from './sandbox-restore.ts';

export interface NamespaceSuspendOptions {
  /** Whether the service suspends (hibernate.mode 'suspend', not refused). */
  suspends(config: ServiceConfig): boolean;
  /** Why CRIU cannot be used, or null. */
  criuProblem(): Promise<string | null>;
}

/** The folder a restored sandbox's root is built in: beside its image, kept while the sandbox runs on it. */
const rootDirOf = (dir: string): string => `${dir}.root`;

export function setupNamespaceSuspend(ctx: PluginContext, options: NamespaceSuspendOptions): void {
  const dataDir = ctx.paths.dataDir;
  const applies = (spec: SpawnSpec): boolean => spec.tier === 'namespace' && options.suspends(spec.config);

  // CRIU checkpoints a user namespace only when its uid 0 is mapped: the tenant is uid 0 inside, its own uid outside.
  ctx.hooks.beforeSpawn.tap((spec: SpawnSpec): SpawnSpec => (applies(spec) ? { ...spec, rootInUserns: true } : spec));

  ctx.hooks.afterSpawn.tap((handle: RunningHandle, spec: SpawnSpec): RunningHandle => {
    if (!applies(spec) || spec.netns || handle.pid === null) return handle;
    const leader = handle.pid;
    const key = `${spec.service}:${spec.id}`;
    return {
      ...handle,
      async stop(stopOptions) {
        if (!stopOptions.hibernating) return handle.stop(stopOptions);
        const problem = await options.criuProblem();
        if (problem) {
          ctx.log.warn({ instance: key, reason: problem }, 'cannot suspend: stopping instead');
          return handle.stop(stopOptions);
        }
        const dir = imageDir(dataDir, spec.service, spec.id);
        try {
          const init = sandboxInit(leader);
          if (init === null) throw new Error("criu dump failed: the sandbox's init is gone");
          prepareParent(dataDir, dir);
          removeImage(dir);
          const meta = await dumpSandbox({ service: spec.service, id: spec.id, pid: init, host: handle.address.host, port: handle.address.port, user: spec.user ?? null }, `${dir}.dumping`);
          renameSync(`${dir}.dumping`, dir);
          ctx.log.info({ instance: key, dumpMs: meta.dumpMs, bytes: meta.bytes }, 'suspended');
        } catch (error) {
          ctx.log.warn({ instance: key, reason: (error as Error).message }, 'suspend failed: stopping instead');
        }
        // Dumped, the sandbox is gone and bwrap's outer process ends: this reaps it. Not dumped: a plain stop.
        return handle.stop(stopOptions);
      },
    };
  });

  ctx.hooks.spawn.for('namespace').tap(
    async (spec: SpawnSpec): Promise<RunningHandle | undefined> => {
      if (!applies(spec)) return undefined;
      let dir: string;
      try {
        dir = imageDir(dataDir, spec.service, spec.id);
      } catch {
        return undefined;
      }
      if (!hasImage(dir)) return undefined;
      const key = `${spec.service}:${spec.id}`;
      // Taken before anything else: an image is restored at most once, and a failed one is never tried again.
      const taken = take(dir, 'restoring');
      if (!taken) return undefined;
      const started = Date.now();
      try {
        const problem = await options.criuProblem();
        if (problem) throw new Error(problem);
        if (spec.netns) throw new Error('the instance now runs in a network namespace');
        const meta = readMeta(taken);
        if (!meta) throw new Error('the image has no meta.json');
        const expectedUid = spec.user?.uid ?? process.getuid?.() ?? 0;
        if (meta.service !== spec.service || meta.id !== spec.id) throw new Error(`the image is of ${meta.service}:${meta.id}, not ${key}`);
        if (meta.uid !== expectedUid) throw new Error(`the image ran as uid ${meta.uid}, the instance runs as ${expectedUid}`);
        // At most half the wake's startupTimeout: a restore that fails must leave the cold start time to answer.
        const handle = await restoreSandbox(spec, taken, rootDirOf(dir), meta, expectedUid, Math.min(spec.config.startupTimeout / 2, 15_000));
        ctx.log.info({ instance: key, restoreMs: Date.now() - started, pid: handle.pid }, 'restored from suspend');
        return handle;
      } catch (error) {
        ctx.log.warn({ instance: key, reason: (error as Error).message }, 'restore failed: starting cold');
        return undefined;
      } finally {
        removeImage(dir);
      }
    },
    { stage: -50 },
  );

  // The root folder goes with the instance, as its images do (index.ts).
  ctx.instances.watch((event) => {
    if (event.type !== 'removed') return;
    try {
      rmSync(rootDirOf(imageDir(dataDir, event.service, event.id)), { recursive: true, force: true });
    } catch {
      // A name no image could have been saved under.
    }
  });
}
