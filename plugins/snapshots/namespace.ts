/**
 * Suspend-depth hibernation for the namespace tier (docs/snapshots.md, "The namespace tier"): the same life as
 * the process tier's (index.ts), with the sandbox's tree dumped from bwrap's init (sandbox-dump.ts) and restored
 * with its namespaces (sandbox-restore.ts). A sandbox in a network namespace of its own (`network: 'private' |
 * 'none'`) is stopped, not suspended.
 */
import { rmSync } from 'node:fs';
import type { ServiceConfig } from '../../core/config/schema.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { RunningHandle, SpawnSpec } from '../../core/types.ts';
import { imageDir } from './images.ts';
import { sandboxInit } from './sandbox-plan.ts';
import { dumpSandbox } from './sandbox-dump.ts';
import { restoreSandbox } from './sandbox-restore.ts';
import { suspendingHandle, wakeFromImage, type CriuProblem } from './suspend-life.ts';

export interface NamespaceSuspendOptions {
  /** Whether the service suspends (hibernate.mode 'suspend', not refused). */
  suspends(config: ServiceConfig): boolean;
  /** Why CRIU cannot be used, or null. */
  criuProblem: CriuProblem;
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
    return suspendingHandle(ctx, spec, handle, options.criuProblem, { root: () => sandboxInit(leader), goneReason: "criu dump failed: the sandbox's init is gone", dump: dumpSandbox });
  });

  ctx.hooks.spawn.for('namespace').tap(
    async (spec: SpawnSpec): Promise<RunningHandle | undefined> => {
      if (!applies(spec)) return undefined;
      return wakeFromImage(ctx, spec, options.criuProblem, (wakeSpec, image, dir, meta, uid, timeoutMs) => restoreSandbox(wakeSpec, image, rootDirOf(dir), meta, uid, timeoutMs));
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
