import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { ServiceConfig } from '../../core/config/schema.ts';
import type { RunningHandle, SpawnSpec } from '../../core/types.ts';
import { definePlugin } from '../../sdk/index.ts';
import { criuStatus } from './criu.ts';
import { dumpInstance } from './dump.ts';
import { imageDir, removeImage } from './images.ts';
import { restoreInstance } from './restore.ts';
import { setupNamedSnapshots } from './named-setup.ts';
import { setupMigration } from './migrate.ts';
import { setupNamespaceSuspend } from './namespace.ts';
import { snapshotsServiceFields } from './schema.ts';
import { suspendingHandle, wakeFromImage } from './suspend-life.ts';

const suspends = (config: ServiceConfig): boolean => config.hibernate?.mode === 'suspend';

/** Why a service cannot be suspended, or null. The process tier's processes and the namespace tier's sandboxes are saved. */
function refusal(config: ServiceConfig): string | null {
  if (config.isolation !== 'process' && config.isolation !== 'namespace') {
    return `isolation '${config.isolation}' cannot be suspended: only the process tier and the namespace tier are (sandbox instances run on gVisor's own kernel, which CRIU cannot save; microvm instances are VMs; wasm instances live inside Tenement)`;
  }
  if (config.isolation === 'namespace' && config.network !== undefined && config.network !== 'host') {
    return `isolation 'namespace' with network '${config.network}' cannot be suspended: its network namespace is made outside the sandbox's user namespace, and CRIU refuses a tree whose namespaces that user namespace does not own`;
  }
  if (config.listen === 'socket') return "listen: 'socket' cannot be suspended: the socket's path is removed before each start, and a restored listener would lose it";
  return null;
}

function checkServices(ctx: PluginContext): void {
  for (const [name, config] of ctx.services.entries()) {
    if (!suspends(config)) continue;
    const why = refusal(config);
    if (why) throw new TenementError(ErrorCodes.CONFIG_INVALID, `services.${name}.hibernate.mode 'suspend': ${why}; use mode 'stop'`);
  }
}

/**
 * Suspend-depth hibernation (docs/snapshots.md): a service with `hibernate: { mode: 'suspend' }` is saved with
 * CRIU when it hibernates (its memory, fds and listening socket, into `<dataDir>/.snapshots`, root's, 0600) and
 * restored on the next request instead of started: the restore is the spawn of the wake, so the wake queue's one
 * start per herd is one restore per herd. A restore that fails (a bad image, a port taken meanwhile, an image of
 * another instance or uid) is logged with its reason and the image deleted; the instance then starts cold.
 */
export default definePlugin({
  name: 'snapshots',
  version: '1.0.0',
  kernel: '^1',
  serviceFields: snapshotsServiceFields,
  setup(ctx) {
    checkServices(ctx);
    const dataDir = ctx.paths.dataDir;
    let usable: Promise<string | null> | null = null;
    // `criu check` once, on first need: a server with no suspending service never runs CRIU.
    const criuProblem = (): Promise<string | null> => (usable ??= criuStatus().then((status) => (status.usable ? null : status.reason)));
    // The fleet's live moves (`ten move`): checkpoint on the source node, restore on the target (migrate.ts).
    setupMigration(ctx, criuProblem);
    // The namespace tier's sandboxes: the same life, their own dump and restore (namespace.ts).
    setupNamespaceSuspend(ctx, { suspends: (config) => suspends(config) && !refusal(config), criuProblem });

    // Named snapshots (`ten snapshot`): taken while running, restored through the next spawn (named-setup.ts).
    setupNamedSnapshots(ctx, criuProblem);

    ctx.hooks.afterSpawn.tap((handle: RunningHandle, spec: SpawnSpec): RunningHandle => {
      if (spec.tier !== 'process' || !suspends(spec.config) || refusal(spec.config) || spec.netns || handle.pid === null) return handle;
      const pid = handle.pid;
      return suspendingHandle(ctx, spec, handle, criuProblem, { root: () => pid, goneReason: 'criu dump failed: the process is gone', dump: dumpInstance });
    });

    ctx.hooks.spawn.for('process').tap(
      async (spec: SpawnSpec): Promise<RunningHandle | undefined> => {
        if (!suspends(spec.config) || refusal(spec.config)) return undefined;
        return wakeFromImage(ctx, spec, criuProblem, (wakeSpec, image, _dir, meta, uid, timeoutMs) => restoreInstance(wakeSpec, image, meta, uid, timeoutMs));
      },
      { stage: -50 },
    );

    // Images hold tenant memory: they go with the instance.
    ctx.instances.watch((event) => {
      if (event.type !== 'removed') return;
      try {
        removeImage(imageDir(dataDir, event.service, event.id));
      } catch {
        // A name no image could have been saved under.
      }
    });
  },
});
