import type { PluginContext } from '../../core/plugin-context.ts';
import { fullness, readUsage } from './usage.ts';
import type { Volumes } from './volumes.ts';

const percent = (share: number): string => `${Math.round(share * 1000) / 10}%`;
const mib = (bytes: number): string => `${Math.round((bytes / 1048576) * 10) / 10}MiB`;

/**
 * The threshold event: polls each mounted instance's statfs (about 5 µs each, so a thousand mounts cost ~5 ms
 * per round) and emits 'storage-warning' when usage crosses `limits.storageWarn` upwards; it is re-armed once
 * usage falls back below. Polling rather than watching writes: a tenant's writes never pass through Tenement.
 */
export class StorageWarnings {
  /** Instances above their threshold (already warned). */
  private readonly above = new Set<string>();

  constructor(
    private readonly ctx: Pick<PluginContext, 'instances' | 'lifecycle' | 'log'>,
    private readonly volumes: Volumes,
  ) {}

  check(): void {
    for (const volume of this.volumes.list()) {
      const instance = this.ctx.instances.get(volume.service, volume.id);
      if (!instance) continue;
      const usage = readUsage(volume.mountPoint, volume.imageBytes);
      if (!usage) continue;
      const threshold = instance.config.limits?.storageWarn ?? 0.9;
      const share = fullness(usage);
      if (share < threshold) {
        this.above.delete(volume.key);
        continue;
      }
      if (this.above.has(volume.key)) continue;
      this.above.add(volume.key);
      const inodes = usage.inodesLimit > 0 && usage.inodesUsed / usage.inodesLimit >= threshold;
      const detail = inodes
        ? `${usage.inodesUsed} of ${usage.inodesLimit} files (${percent(share)})`
        : `${mib(usage.usedBytes)} of ${mib(usage.limitBytes)} (${percent(share)})`;
      this.ctx.log.warn({ instance: volume.key, ...usage }, 'instance is near its limit');
      this.ctx.lifecycle.emit(instance, 'storage-warning', `storage use ${detail} is at or above its warning threshold of ${percent(threshold)}`);
    }
  }

  forget(key: string): void {
    this.above.delete(key);
  }
}
