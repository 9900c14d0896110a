import { errorMessage } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { definePlugin } from '../../sdk/index.ts';
import type { InstanceEvent, SpawnSpec } from '../../sdk/index.ts';
import { collectGarbage, type GcReport } from './gc.ts';
import { StorageLayout } from './layout.ts';
import { pointAtMount } from './link-blind.ts';
import { registerStorageMetrics } from './metrics.ts';
import { resolveOptions, type StorageOptions } from './options.ts';
import { RetentionLedger } from './retention.ts';
import { gcRoute } from './routes.ts';
import { readUsage } from './usage.ts';
import { Volumes } from './volumes.ts';
import { StorageWarnings } from './warnings.ts';
import { storageServiceFields } from './schema.ts';

export type { StorageOptions } from './options.ts';
export type { GcReport } from './gc.ts';

/**
 * Hard per-instance storage limits and data clean-up (docs/storage.md). `limits.storage` gives an instance a
 * sparse ext4 image of that size, loop-mounted and linked as its DATA_DIR, so a tenant writing past it gets
 * ENOSPC and nobody else notices. Usage goes to the API (`facts.storage`), `ten ps` and metrics, with a
 * 'storage-warning' event past `limits.storageWarn`. Removing an instance releases its mount and deletes its
 * data now (`keepData: false`), never (`true`) or after a retention (`'7d'`, deleted by gc: `ten gc`, or the
 * plugin's own timer).
 */
export default definePlugin<StorageOptions | undefined>({
  name: 'storage',
  version: '1.0.0',
  kernel: '^1',
  // `limits.storage` and `limits.storageWarn` are this plugin's config (./schema.ts), merged into `limits`.
  serviceFields: storageServiceFields,
  async setup(ctx) {
    const options = resolveOptions(ctx.config);
    const layout = new StorageLayout(ctx.paths.dataDir);
    const volumes = new Volumes(layout, (service, id) => ctx.paths.instanceDir(service, id), ctx.log);
    const ledger = new RetentionLedger(layout.retentionFile);
    const warnings = new StorageWarnings(ctx, volumes);

    const adopted = await volumes.adoptExisting();
    if (adopted.length > 0) ctx.log.info({ instances: adopted }, 'mounts of the previous run adopted');

    ctx.hooks.beforeSpawn.tap((spec) => attachStorage(ctx, volumes, ledger, spec));
    ctx.hooks.stateChange.tap((event) => releaseRemoved(ctx, volumes, ledger, warnings, event));
    ctx.hooks.describe.tap((instance, facts) => {
      const volume = volumes.get(instance.key);
      if (!volume) return;
      const usage = readUsage(volume.mountPoint, volume.imageBytes);
      facts.storage = volume.warning && usage ? { ...usage, warning: volume.warning } : usage;
    });
    ctx.hooks.metrics.tap((registry) => registerStorageMetrics(ctx.instances, volumes, registry));

    let gcRunning: Promise<GcReport> | null = null;
    const runGc = (): Promise<GcReport> => {
      gcRunning ??= collectGarbage(ctx, layout, volumes, ledger).finally(() => {
        gcRunning = null;
      });
      return gcRunning;
    };
    gcRoute(ctx.api, runGc);
    const stopTimers = startTimers(ctx, options, warnings, runGc);

    // Mounts stay at shutdown: the next run adopts them, and an instance's next start needs no mount.
    ctx.onClose(async () => {
      stopTimers();
      await gcRunning?.catch(() => undefined);
    });
  },
});

type StorageContext = Pick<PluginContext, 'tiers' | 'instances' | 'lifecycle' | 'services' | 'log'>;

/** beforeSpawn: the instance's image attached and mounted, DATA_DIR pointing at it. */
async function attachStorage(ctx: StorageContext, volumes: Volumes, ledger: RetentionLedger, spec: SpawnSpec): Promise<SpawnSpec> {
  const key = `${spec.service}:${spec.id}`;
  // Back before its retention ran out: its data is its own again.
  if (ledger.has(key)) await ledger.drop(key);
  // A runtime that enforces limits.storage itself (the microvm's data disk of that size) needs no image around
  // it: a second one would only shave another 10-20% off the tenant's space.
  const traits = ctx.tiers.traits(spec.tier);
  if (traits.enforcesStorageLimit) return spec;
  const started = performance.now();
  const result = await volumes.attach(spec.service, spec.id, spec.config.limits?.storage);
  if (!result) return spec;
  if (result.actions.length > 0) {
    const ms = Math.round((performance.now() - started) * 10) / 10;
    ctx.log.info({ instance: key, image: result.volume.image, ms }, result.actions.join(', '));
  }
  if (result.warning) {
    ctx.log.warn({ instance: key }, result.warning);
    const instance = ctx.instances.get(spec.service, spec.id);
    if (instance) ctx.lifecycle.emit(instance, 'storage-warning', result.warning);
  }
  // DATA_DIR keeps its path: it is now a link to the mount point (except for runtimes that cannot follow it).
  return traits.followsDataDirLink ? spec : pointAtMount(spec, result.volume.mountPoint);
}

/** stateChange: a removed instance's mount is released, its image deleted or scheduled as keepData says. */
async function releaseRemoved(
  ctx: StorageContext,
  volumes: Volumes,
  ledger: RetentionLedger,
  warnings: StorageWarnings,
  event: InstanceEvent,
): Promise<void> {
  if (event.type !== 'removed') return;
  const { service, id } = event;
  warnings.forget(event.instance);
  const keepData = ctx.services.get(service)?.keepData ?? true;
  try {
    // The kernel has stopped its processes and (keepData: false) deleted DATA_DIR, which was only the link.
    const freed = await volumes.detach(service, id, keepData === false);
    if (keepData === false && freed > 0) ctx.log.info({ instance: event.instance, freedBytes: freed }, 'image deleted');
    if (typeof keepData === 'number') {
      const now = Date.now();
      await ledger.add({ service, id, removedAt: now, deleteAt: now + keepData });
    }
  } catch (error) {
    ctx.log.warn({ instance: event.instance, err: errorMessage(error) }, 'could not release the storage of a removed instance (ten gc retries)');
  }
}

/** The warning poll and gc's own timer; returns what stops them. */
function startTimers(
  ctx: Pick<PluginContext, 'serving' | 'log'>,
  options: { pollMs: number; gcMs: number | false },
  warnings: StorageWarnings,
  runGc: () => Promise<GcReport>,
): () => void {
  // Before the server listens the registry is still empty (instances are restored after it): every instance
  // would look removed, so timers do nothing until then.
  const poll = setInterval(() => {
    if (ctx.serving) warnings.check();
  }, options.pollMs);
  poll.unref();
  const gcTimer =
    options.gcMs === false
      ? null
      : setInterval(() => {
          if (!ctx.serving) return;
          void runGc().then(
            (report) => {
              if (report.deleted.length + report.unmounted.length + report.errors.length > 0) ctx.log.info({ ...report }, 'gc');
            },
            (error: unknown) => ctx.log.warn({ err: errorMessage(error) }, 'gc failed'),
          );
        }, options.gcMs);
  gcTimer?.unref();
  return () => {
    clearInterval(poll);
    if (gcTimer) clearInterval(gcTimer);
  };
}
