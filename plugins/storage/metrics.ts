import { Gauge, type Registry } from 'prom-client';
import type { InstanceDirectory } from '../../core/plugin-context.ts';
import { readUsage } from './usage.ts';
import type { Volumes } from './volumes.ts';

/** tenement_instance_storage_bytes{service,instance,kind="used|limit"}, read from statfs when scraped. */
export function registerStorageMetrics(instances: Pick<InstanceDirectory, 'get'>, volumes: Volumes, registry: Registry): void {
  new Gauge({
    name: 'tenement_instance_storage_bytes',
    help: "Bytes used in each instance's DATA_DIR and the most it can hold (limits.storage less ext4 metadata).",
    labelNames: ['service', 'instance', 'kind'],
    registers: [registry],
    collect() {
      this.reset();
      for (const volume of volumes.list()) {
        if (!instances.get(volume.service, volume.id)) continue;
        const usage = readUsage(volume.mountPoint, volume.imageBytes);
        if (!usage) continue;
        const labels = { service: volume.service, instance: volume.key };
        this.set({ ...labels, kind: 'used' }, usage.usedBytes);
        this.set({ ...labels, kind: 'limit' }, usage.limitBytes);
      }
    },
  });
}
