/**
 * The life of a suspended instance, the same on the process tier (index.ts) and the namespace tier
 * (namespace.ts): a hibernating stop dumps it into its image folder (or stops it when it cannot), and the next
 * spawn restores that image once (or falls back to a cold start). The tiers differ only in what is dumped and how
 * it is restored, passed in here.
 */
import { renameSync } from 'node:fs';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { RunningHandle, SpawnSpec } from '../../core/types.ts';
import type { DumpTarget } from './dump.ts';
import { discardLater, hasImage, imageDir, imageOwnerUid, prepareParent, readMeta, removeImage, take, type ImageMeta } from './images.ts';

/** Why CRIU cannot be used, or null. */
export type CriuProblem = () => Promise<string | null>;

export interface SuspendDump {
  /** The pid the dump starts from; null when it is gone (the dump then fails with `goneReason`). */
  root(): number | null;
  goneReason: string;
  dump(target: DumpTarget, dir: string): Promise<ImageMeta>;
}

/** `handle` with a stop that, when hibernating, saves the instance into its image folder before stopping it. */
export function suspendingHandle(ctx: PluginContext, spec: SpawnSpec, handle: RunningHandle, criuProblem: CriuProblem, tier: SuspendDump): RunningHandle {
  const dataDir = ctx.paths.dataDir;
  const key = `${spec.service}:${spec.id}`;
  return {
    ...handle,
    async stop(options) {
      if (!options.hibernating) return handle.stop(options);
      const problem = await criuProblem();
      if (problem) {
        ctx.log.warn({ instance: key, reason: problem }, 'cannot suspend: stopping instead');
        return handle.stop(options);
      }
      const dir = imageDir(dataDir, spec.service, spec.id);
      try {
        const pid = tier.root();
        if (pid === null) throw new Error(tier.goneReason);
        prepareParent(dataDir, dir);
        removeImage(dir);
        const meta = await tier.dump({ service: spec.service, id: spec.id, pid, host: handle.address.host, port: handle.address.port, user: spec.user ?? null }, `${dir}.dumping`);
        renameSync(`${dir}.dumping`, dir);
        ctx.log.info({ instance: key, dumpMs: meta.dumpMs, bytes: meta.bytes }, 'suspended');
      } catch (error) {
        ctx.log.warn({ instance: key, reason: (error as Error).message }, 'suspend failed: stopping instead');
      }
      // Dumped, the process (or sandbox) is gone: this reaps it (a restore needs its pid free). Not dumped: a plain stop.
      return handle.stop(options);
    },
  };
}

/** Restores `image` (taken, so restored at most once) for `spec` as the instance's `uid`, within `timeoutMs`. */
export type SuspendRestore = (spec: SpawnSpec, image: string, dir: string, meta: ImageMeta, uid: number, timeoutMs: number) => Promise<RunningHandle>;

/**
 * The spawn of a wake: the instance's image restored, or undefined (a cold start) when it has none or its restore
 * fails (logged with its reason). The image is deleted either way.
 */
export async function wakeFromImage(ctx: PluginContext, spec: SpawnSpec, criuProblem: CriuProblem, restore: SuspendRestore): Promise<RunningHandle | undefined> {
  let dir: string;
  try {
    dir = imageDir(ctx.paths.dataDir, spec.service, spec.id);
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
    const problem = await criuProblem();
    if (problem) throw new Error(problem);
    if (spec.netns) throw new Error('the instance now runs in a network namespace');
    const meta = readMeta(taken);
    if (!meta) throw new Error('the image has no meta.json');
    const expectedUid = imageOwnerUid(meta, spec);
    // At most half the wake's startupTimeout: a restore that fails must leave the cold start time to answer.
    const handle = await restore(spec, taken, dir, meta, expectedUid, Math.min(spec.config.startupTimeout / 2, 15_000));
    ctx.log.info({ instance: key, restoreMs: Date.now() - started, pid: handle.pid }, 'restored from suspend');
    return handle;
  } catch (error) {
    ctx.log.warn({ instance: key, reason: (error as Error).message }, 'restore failed: starting cold');
    return undefined;
  } finally {
    // `dir` itself was taken: the image is `taken` now, and nothing can restore it again.
    discardLater(taken);
  }
}
