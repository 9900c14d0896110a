import { existsSync } from 'node:fs';
import { lstat, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { errorMessage } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { StorageLayout } from './layout.ts';
import type { RetentionLedger } from './retention.ts';
import type { Volumes } from './volumes.ts';

export interface GcReport {
  /** Data deleted: the instance, the host bytes freed and why it was due. */
  deleted: Array<{ instance: string; freedBytes: number; reason: string }>;
  /** Mounts of instances that no longer exist, released (their images kept or deleted as keepData says). */
  unmounted: string[];
  /** Removed instances whose data waits for its retention to pass. */
  pending: Array<{ instance: string; deleteAt: number }>;
  errors: Array<{ instance: string; error: string }>;
  freedBytes: number;
  /** Log lines are kept within their size and age budgets by the logs plugin's own timer, not by gc. */
  logs: string;
  durationMs: number;
}

/** Host bytes a file tree takes (allocated blocks, so sparse files count what they really use). */
async function diskUsage(target: string): Promise<number> {
  const info = await lstat(target).catch(() => null);
  if (!info) return 0;
  let total = info.blocks * 512;
  if (info.isDirectory()) {
    for (const entry of await readdir(target).catch(() => [])) total += await diskUsage(path.join(target, entry));
  }
  return total;
}

async function listDir(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/**
 * Deletes what removed instances left behind once their time has come, and releases what nothing uses:
 * - data of removed instances whose `keepData` retention has passed (DATA_DIR, storage image, mount point);
 * - mounts of instances that are not known any more (removed while Tenement was down, or a service dropped
 *   from the config): unmounted; their images deleted with `keepData: false`, scheduled with a retention;
 * - images and DATA_DIRs of unknown instances of services with `keepData: false` (deleted) or a retention
 *   (scheduled from now: when they were removed is not known).
 * An instance that exists again (the same id re-created) is never touched and leaves the schedule.
 */
export async function collectGarbage(
  ctx: Pick<PluginContext, 'instances' | 'services' | 'paths' | 'tenantUids'>,
  layout: StorageLayout, volumes: Volumes, ledger: RetentionLedger): Promise<GcReport> {
  const started = performance.now();
  const report: GcReport = {
    deleted: [],
    unmounted: [],
    pending: [],
    errors: [],
    freedBytes: 0,
    logs: 'kept within their size and age budgets by the logs plugin on its own timer',
    durationMs: 0,
  };
  const now = Date.now();
  const exists = (service: string, id: string): boolean => ctx.instances.get(service, id) !== undefined;
  const keepDataOf = (service: string): boolean | number | undefined => ctx.services.get(service)?.keepData;

  const deleteData = async (service: string, id: string, reason: string): Promise<void> => {
    const key = `${service}:${id}`;
    try {
      let freed = await volumes.detach(service, id, true);
      const dataDir = ctx.paths.instanceDir(service, id);
      freed += await diskUsage(dataDir);
      await rm(dataDir, { recursive: true, force: true });
      // No data left for its uid to own: the uid goes back to settings.tenantUids (kept if it was re-created).
      ctx.tenantUids.release(service, id);
      report.deleted.push({ instance: key, freedBytes: freed, reason });
      report.freedBytes += freed;
    } catch (error) {
      report.errors.push({ instance: key, error: errorMessage(error) });
    }
  };
  const schedule = async (service: string, id: string, retentionMs: number): Promise<void> => {
    if (!ledger.has(`${service}:${id}`)) await ledger.add({ service, id, removedAt: now, deleteAt: now + retentionMs });
  };

  // 1. Mounts nothing uses any more.
  for (const entry of volumes.currentMounts().values()) {
    const owner = layout.instanceOfMountPoint(entry.mountPoint);
    if (!owner || exists(owner.service, owner.id)) continue;
    try {
      await volumes.detach(owner.service, owner.id, false);
      report.unmounted.push(`${owner.service}:${owner.id}`);
    } catch (error) {
      report.errors.push({ instance: `${owner.service}:${owner.id}`, error: errorMessage(error) });
    }
  }

  // 2. Images and DATA_DIRs of instances that do not exist: by their service's keepData.
  const orphans = new Set<string>();
  for (const service of await listDir(layout.imagesRoot)) {
    for (const file of await listDir(path.join(layout.imagesRoot, service))) {
      if (file.endsWith('.img')) orphans.add(`${service}:${file.slice(0, -4)}`);
    }
  }
  const instancesRoot = path.join(ctx.paths.dataDir, 'instances');
  for (const service of await listDir(instancesRoot)) {
    if (typeof keepDataOf(service) !== 'number' && keepDataOf(service) !== false) continue;
    for (const id of await listDir(path.join(instancesRoot, service))) orphans.add(`${service}:${id}`);
  }
  for (const key of orphans) {
    const [service, id] = key.split(':') as [string, string];
    if (exists(service, id) || ledger.has(key)) continue;
    const keepData = keepDataOf(service);
    if (keepData === false) await deleteData(service, id, 'its instance is gone and its service has keepData: false');
    else if (typeof keepData === 'number') await schedule(service, id, keepData);
  }

  // 3. Removed instances whose retention has passed.
  for (const entry of ledger.list()) {
    const key = `${entry.service}:${entry.id}`;
    if (exists(entry.service, entry.id)) {
      await ledger.drop(key);
      continue;
    }
    if (entry.deleteAt > now) {
      report.pending.push({ instance: key, deleteAt: entry.deleteAt });
      continue;
    }
    await deleteData(entry.service, entry.id, `removed at ${new Date(entry.removedAt).toISOString()}; its keepData retention has passed`);
    if (!existsSync(ctx.paths.instanceDir(entry.service, entry.id))) await ledger.drop(key);
  }
  report.durationMs = Math.round((performance.now() - started) * 1000) / 1000;
  return report;
}
