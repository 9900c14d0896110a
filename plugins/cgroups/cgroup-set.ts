import path from 'node:path';
import type { Logger } from '../../core/logger.ts';
import { removeTree } from './cgroupfs.ts';
import type { CgroupHost } from './detect.ts';
import type { InstanceCgroup } from './instance-cgroup.ts';

/**
 * The cgroups of this server's live runs, by instance key, with the clean-ups under way and the OOM kills
 * counted over the server's life. A cgroup is released when its run ends: emptied and removed in the background,
 * and the next run of the same instance waits for that before it makes its own (the path is the same).
 */
export class CgroupSet {
  private readonly live = new Map<string, InstanceCgroup>();
  private readonly cleaning = new Map<string, Promise<void>>();
  private readonly oomKills = new Map<string, number>();

  constructor(
    private readonly host: CgroupHost,
    /** tenement/<scope>: this data directory's subtree in every hierarchy. */
    readonly scope: string,
    private readonly log: Logger,
  ) {}

  /** Cgroups of a previous run on this data directory (a crash, a kill -9): their processes go, then the tree. */
  async removeLeftovers(): Promise<void> {
    for (const root of this.roots()) {
      const left = await removeTree(path.join(root, this.scope));
      if (left.length > 0) this.log.warn({ left }, 'could not remove cgroups left by a previous run');
    }
  }

  get(key: string): InstanceCgroup | undefined {
    return this.live.get(key);
  }

  add(key: string, cgroup: InstanceCgroup): void {
    this.live.set(key, cgroup);
  }

  /** Releases the previous run's cgroup and resolves once it is gone. */
  async clear(key: string): Promise<void> {
    this.release(key);
    await this.cleaning.get(key);
  }

  /** Empties and removes the instance's cgroup in the background. */
  release(key: string): void {
    const cgroup = this.live.get(key);
    if (!cgroup) return;
    this.live.delete(key);
    const run = (this.cleaning.get(key) ?? Promise.resolve())
      .then(() => cgroup.destroy())
      .then((left) => {
        if (left.length > 0) this.log.warn({ instance: key, left }, 'could not remove cgroup');
      })
      .catch((error: unknown) => this.log.warn({ instance: key, err: String(error) }, 'clean-up failed'))
      .finally(() => {
        if (this.cleaning.get(key) === run) this.cleaning.delete(key);
      });
    this.cleaning.set(key, run);
  }

  countOomKills(key: string, kills: number): void {
    this.oomKills.set(key, (this.oomKills.get(key) ?? 0) + kills);
  }

  /** OOM kills over the life of this server, across restarts (a cached count: read for every instance view). */
  oomKillsOf(key: string): number {
    return this.oomKills.get(key) ?? 0;
  }

  /** Every cgroup released and removed, then this server's subtree. */
  async close(): Promise<void> {
    for (const key of [...this.live.keys()]) this.release(key);
    await Promise.all(this.cleaning.values());
    for (const root of this.roots()) await removeTree(path.join(root, this.scope));
  }

  private roots(): Set<string> {
    return new Set(Object.values(this.host.roots));
  }
}
