import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { renameSync } from 'node:fs';
import type { ServiceConfig } from '../../core/config/schema.ts';
import type { RunningHandle, SpawnSpec } from '../../core/types.ts';
import { definePlugin } from '../../sdk/index.ts';
import { criuStatus } from './criu.ts';
import { dumpInstance } from './dump.ts';
import { hasImage, imageDir, prepareParent, readMeta, removeImage, take } from './images.ts';
import { restoreInstance } from './restore.ts';
import { setupNamedSnapshots } from './named-setup.ts';
import { setupMigration } from './migrate.ts';
import { setupNamespaceSuspend } from './namespace.ts';
import { snapshotsServiceFields } from './schema.ts';

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

/** The uid an instance runs as: its own when Tenement is root, Tenement's otherwise. */
const uidFor = (spec: SpawnSpec): number => spec.user?.uid ?? process.getuid?.() ?? 0;

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
            prepareParent(dataDir, dir);
            removeImage(dir);
            const meta = await dumpInstance({ service: spec.service, id: spec.id, pid, host: handle.address.host, port: handle.address.port, user: spec.user ?? null }, `${dir}.dumping`);
            renameSync(`${dir}.dumping`, dir);
            ctx.log.info({ instance: key, dumpMs: meta.dumpMs, bytes: meta.bytes }, 'suspended');
          } catch (error) {
            ctx.log.warn({ instance: key, reason: (error as Error).message }, 'suspend failed: stopping instead');
          }
          // Dumped, the process is gone: this reaps it (a restore needs its pid free). Not dumped: a plain stop.
          return handle.stop(options);
        },
      };
    });

    ctx.hooks.spawn.for('process').tap(
      async (spec: SpawnSpec): Promise<RunningHandle | undefined> => {
        if (!suspends(spec.config) || refusal(spec.config)) return undefined;
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
          const problem = await criuProblem();
          if (problem) throw new Error(problem);
          if (spec.netns) throw new Error('the instance now runs in a network namespace');
          const meta = readMeta(taken);
          if (!meta) throw new Error('the image has no meta.json');
          const expectedUid = uidFor(spec);
          if (meta.service !== spec.service || meta.id !== spec.id) throw new Error(`the image is of ${meta.service}:${meta.id}, not ${key}`);
          if (meta.uid !== expectedUid) throw new Error(`the image ran as uid ${meta.uid}, the instance runs as ${expectedUid}`);
          // At most half the wake's startupTimeout: a restore that fails must leave the cold start time to answer.
          const handle = await restoreInstance(spec, taken, meta, expectedUid, Math.min(spec.config.startupTimeout / 2, 15_000));
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
