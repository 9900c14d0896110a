import { lstatSync } from 'node:fs';
import type { ServiceConfig } from '../config/schema.ts';
import type { Logger } from '../logger.ts';
import type { Store } from '../store.ts';
import { explicitUid, explicitUser, type TenantUser } from './tenant-user.ts';
import { UidAllocator, type UidRange } from './uid-allocator.ts';

export interface InstanceUidsOptions {
  store: Store;
  /** `settings.tenantUids` */
  range: UidRange;
  services: Readonly<Record<string, ServiceConfig>>;
  /** Tenants get uids of their own only when Tenement is root; otherwise they run as Tenement's user. */
  asRoot: boolean;
  log: Logger;
  instanceDir(service: string, id: string): string;
  /** Whether the instance is registered (in any state). */
  exists(service: string, id: string): boolean;
}

const dataExists = (dir: string): boolean => {
  try {
    lstatSync(dir);
    return true;
  } catch {
    return false;
  }
};

/**
 * Who an instance's processes run as when Tenement is root (docs/isolation.md):
 * - a service that sets `user` runs every instance as that user (the operator's choice: they share it);
 * - otherwise each instance has a uid of its own (gid = uid) from `settings.tenantUids`, kept in the state
 *   database. It stays the instance's while the instance exists or its DATA_DIR does (a removed instance
 *   with `keepData` gets its files back when it is created again), and goes back to the range once both are
 *   gone: at removal when its data goes with it, when gc deletes the data later, or at the next start.
 */
export class InstanceUids {
  private readonly allocator: UidAllocator;

  constructor(private readonly options: InstanceUidsOptions) {
    const reserved = new Set<number>();
    for (const config of Object.values(options.services)) {
      const uid = explicitUid(config.user);
      if (uid !== null) reserved.add(uid);
    }
    this.allocator = new UidAllocator(options.store, { range: options.range, reserved });
    if (!options.asRoot) return;
    for (const [service, config] of Object.entries(options.services)) {
      if (config.user === undefined) continue;
      options.log.warn(
        { service, user: config.user },
        `services.${service}.user: every instance of '${service}' runs as this one user, so they can read each other's DATA_DIR and signal each other; leave 'user' unset to give each instance a uid of its own`,
      );
    }
    this.sweep();
  }

  /** The uid and gid to start the instance as; null when Tenement is not root. */
  userFor(service: string, id: string, config: ServiceConfig): TenantUser | null {
    if (!this.options.asRoot) return null;
    if (config.user !== undefined) return explicitUser(service, config.user);
    const uid = this.allocator.uidFor(service, id);
    return { uid, gid: uid };
  }

  /** Frees the instance's uid when nothing is left that it owns: no registered instance, no DATA_DIR. */
  release(service: string, id: string): boolean {
    if (this.options.exists(service, id) || dataExists(this.options.instanceDir(service, id))) return false;
    return this.allocator.release(service, id);
  }

  /** Uids of instances gone from the store whose data is gone too (deleted while Tenement was down, by hand). */
  private sweep(): void {
    const stored = new Set(this.options.store.listInstances().map((row) => `${row.service}:${row.id}`));
    for (const { service, id } of this.allocator.list()) {
      if (stored.has(`${service}:${id}`) || dataExists(this.options.instanceDir(service, id))) continue;
      this.allocator.release(service, id);
    }
  }

  list(): ReturnType<UidAllocator['list']> {
    return this.allocator.list();
  }
}
