import { existsSync, statfsSync } from 'node:fs';
import { lstat, mkdir, readdir, readlink, rename, rm, rmdir, stat, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, TenementError, errorMessage } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { allocatedBytes, createImage, findExt4Tools, mountImage, resizeImage, run, unmount, type Ext4Tools } from './ext4.ts';
import type { StorageLayout } from './layout.ts';
import { loopBackingFile, mountsUnder, type MountEntry } from './mountinfo.ts';
import { readUsage } from './usage.ts';

/** One instance's mounted image. */
export interface Volume {
  service: string;
  id: string;
  key: string;
  image: string;
  mountPoint: string;
  /** The loop device, e.g. /dev/loop3. */
  device: string;
  imageBytes: number;
  /** Why the image is not the configured size (a limit lowered below use), shown with its usage. */
  warning: string | null;
}

export interface AttachResult {
  volume: Volume;
  /** What was done, for the log: created, mounted, adopted, grown, shrunk, migrated... */
  actions: string[];
  /** Set when the configured limit could not be applied as is (lowered below what the instance uses). */
  warning: string | null;
}

const MIB = 1024 * 1024;
const mib = (bytes: number): string => `${Math.round((bytes / MIB) * 10) / 10}MiB`;

/**
 * The mounted images, one per instance with `limits.storage`: created, mounted, resized and released here,
 * one operation per instance at a time. Mounts are not undone at shutdown: a restarted Tenement finds them in
 * /proc/self/mountinfo and adopts them (an instance's next start needs no mount at all).
 */
export class Volumes {
  private readonly mounted = new Map<string, Volume>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private tools: { tools: Ext4Tools } | { problem: string } | null = null;

  constructor(
    private readonly layout: StorageLayout,
    private readonly instanceDir: (service: string, id: string) => string,
    private readonly log: Logger,
  ) {}

  get(key: string): Volume | undefined {
    return this.mounted.get(key);
  }

  list(): Volume[] {
    return [...this.mounted.values()];
  }

  /** Our mounts as the kernel sees them now (a restart, or someone's manual umount, changes them). */
  currentMounts(): Map<string, MountEntry> {
    return mountsUnder(this.layout.mountsRoot);
  }

  /** Takes over the mounts a previous run left (they are kept on purpose at shutdown); returns their keys. */
  async adoptExisting(): Promise<string[]> {
    const adopted: string[] = [];
    for (const entry of this.currentMounts().values()) {
      const owner = this.layout.instanceOfMountPoint(entry.mountPoint);
      if (!owner) continue;
      const image = this.layout.image(owner.service, owner.id);
      if (loopBackingFile(entry.source) !== image) continue;
      // An image deleted under its mount (by hand) is left for gc to unmount.
      const size = (await stat(image).catch(() => null))?.size;
      if (size === undefined) continue;
      const key = `${owner.service}:${owner.id}`;
      this.mounted.set(key, { ...owner, key, image, mountPoint: entry.mountPoint, device: entry.source, imageBytes: size, warning: null });
      adopted.push(key);
    }
    return adopted;
  }

  /** One operation per instance at a time (a start, a removal and gc may meet). */
  withLock<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    const settled = next.catch(() => undefined);
    this.locks.set(key, settled);
    void settled.then(() => {
      if (this.locks.get(key) === settled) this.locks.delete(key);
    });
    return next;
  }

  private requireTools(key: string): Ext4Tools {
    this.tools ??= findExt4Tools();
    if ('problem' in this.tools) {
      throw new TenementError(ErrorCodes.TIER_UNAVAILABLE, `${key} has limits.storage, but this host cannot enforce it: ${this.tools.problem}`);
    }
    return this.tools.tools;
  }

  /**
   * Makes DATA_DIR the instance's mounted image, of `limitBytes` (undefined: the limit was taken out of the
   * config, and an existing image stays mounted so the data stays where the app expects it). Returns null
   * when there is nothing to mount (no limit, no image).
   */
  attach(service: string, id: string, limitBytes: number | undefined): Promise<AttachResult | null> {
    const key = `${service}:${id}`;
    return this.withLock(key, async () => {
      const image = this.layout.image(service, id);
      if (limitBytes === undefined && !existsSync(image)) return null;
      const tools = this.requireTools(key);
      const mountPoint = this.layout.mountPoint(service, id);
      const actions: string[] = [];
      let created = false;
      let entry = this.currentMounts().get(mountPoint);
      if (!entry) {
        if (!existsSync(image)) {
          await createImage(tools, image, limitBytes!);
          created = true;
          actions.push(`created a ${mib(limitBytes!)} image`);
        }
        try {
          await mkdir(path.dirname(mountPoint), { recursive: true, mode: 0o711 });
          await mountImage(image, mountPoint);
        } catch (error) {
          if (created) await rm(image, { force: true });
          throw new TenementError(ErrorCodes.SPAWN_FAILED, `${key}: cannot mount its storage image: ${errorMessage(error)}`, { cause: error });
        }
        actions.push('mounted');
        entry = this.currentMounts().get(mountPoint);
      } else if (!this.mounted.has(key)) {
        actions.push('adopted the mount of a previous run');
      }
      const backing = entry ? loopBackingFile(entry.source) : null;
      if (!entry || backing !== image) {
        throw new TenementError(
          ErrorCodes.SPAWN_FAILED,
          `${key}: ${mountPoint} holds ${entry ? `${entry.source} (${backing ?? 'not a loop device'})` : 'nothing'}, not its storage image ${image}: unmount it`,
        );
      }
      const volume: Volume = { service, id, key, image, mountPoint, device: entry.source, imageBytes: (await stat(image)).size, warning: null };
      try {
        const migrated = await this.linkDataDir(key, this.instanceDir(service, id), mountPoint);
        if (migrated) actions.push(migrated);
      } catch (error) {
        if (created) await this.release(volume, true).catch(() => undefined);
        throw error;
      }
      this.mounted.set(key, volume);
      const warning = limitBytes !== undefined && limitBytes !== volume.imageBytes ? await this.resize(tools, volume, limitBytes, actions) : null;
      volume.warning = warning;
      if (created) this.warnOvercommit();
      return { volume, actions, warning };
    });
  }

  /**
   * DATA_DIR becomes a symlink to the mount point. A DATA_DIR that is still a plain folder (the limit was added
   * to a service that already had data) has its files copied into the image first; if they do not fit, the
   * start fails and nothing is changed.
   */
  private async linkDataDir(key: string, dataDir: string, mountPoint: string): Promise<string | null> {
    const info = await lstat(dataDir).catch(() => null);
    if (info?.isSymbolicLink()) {
      const target = await readlink(dataDir);
      if (path.resolve(path.dirname(dataDir), target) === mountPoint) return null;
      throw new TenementError(ErrorCodes.SPAWN_FAILED, `${key}: its DATA_DIR ${dataDir} links to ${target}, not to its storage mount ${mountPoint}`);
    }
    let migrated: string | null = null;
    if (info?.isDirectory()) {
      const entries = await readdir(dataDir);
      if (entries.length > 0) {
        try {
          // cp -a keeps owners, modes, times, links and sparse files; `dir/.` copies the contents.
          await run('cp', ['-a', '--', `${dataDir}/.`, `${mountPoint}/`]);
        } catch (error) {
          throw new TenementError(
            ErrorCodes.SPAWN_FAILED,
            `${key}: limits.storage was added to an instance that has data: its ${entries.length} entries in ${dataDir} do not fit the image (${errorMessage(error)}). Raise limits.storage, or remove data first`,
            { cause: error },
          );
        }
        migrated = `moved ${entries.length} existing entries of DATA_DIR into the image`;
      }
      // Swap the folder for the link, then delete the old copy.
      const trash = path.join(this.layout.root, 'trash', `${key.replace(':', '-')}-${Date.now()}`);
      await mkdir(path.dirname(trash), { recursive: true, mode: 0o700 });
      await rename(dataDir, trash);
      await symlink(mountPoint, dataDir);
      await rm(trash, { recursive: true, force: true });
      return migrated;
    }
    if (info) throw new TenementError(ErrorCodes.SPAWN_FAILED, `${key}: its DATA_DIR ${dataDir} is a file, not a folder`);
    await mkdir(path.dirname(dataDir), { recursive: true });
    await symlink(mountPoint, dataDir);
    return null;
  }

  /**
   * A changed limit, applied at the instance's start (its processes have ended): unmount, resize offline, mount
   * again; about 120 ms in all. A limit lowered below what the instance uses (with room for ext4's metadata) leaves the
   * image as it is, and says so. Returns that explanation, or null.
   */
  private async resize(tools: Ext4Tools, volume: Volume, limitBytes: number, actions: string[]): Promise<string | null> {
    const from = volume.imageBytes;
    const keep = (why: string): string =>
      `${volume.key}: limits.storage was lowered to ${mib(limitBytes)}, but ${why}: its image stays at ${mib(from)} (delete data and restart the instance to shrink it)`;
    if (limitBytes < from) {
      const usage = readUsage(volume.mountPoint, from);
      if (usage && usage.usedBytes > limitBytes * 0.8) return keep(`it uses ${mib(usage.usedBytes)}`);
    }
    // Lazily detached would mean still in use: resizing under it would corrupt it.
    if ((await unmount(volume.mountPoint, { losetup: tools.losetup, image: volume.image })) === 'detached') {
      throw new TenementError(ErrorCodes.SPAWN_FAILED, `${volume.key}: its storage image is still in use by a process; cannot resize it`);
    }
    let failure: string | null = null;
    try {
      await resizeImage(tools, volume.image, from, limitBytes);
      actions.push(`${limitBytes > from ? 'grown' : 'shrunk'} from ${mib(from)} to ${mib(limitBytes)}`);
      volume.imageBytes = limitBytes;
    } catch (error) {
      if (limitBytes > from) throw new TenementError(ErrorCodes.SPAWN_FAILED, `${volume.key}: cannot grow its storage image: ${errorMessage(error)}`, { cause: error });
      failure = keep(`resize2fs refused (${errorMessage(error)})`);
    } finally {
      await mountImage(volume.image, volume.mountPoint);
      const entry = this.currentMounts().get(volume.mountPoint);
      if (entry) volume.device = entry.source;
    }
    return failure;
  }

  /**
   * Sparse images promise more than they take: when the limits of the mounted images could not all be
   * written on the host's free space, say so (a full host disk would fail every tenant, not just one).
   */
  private warnOvercommit(): void {
    void (async () => {
      let promised = 0;
      for (const volume of this.mounted.values()) promised += volume.imageBytes - (await allocatedBytes(volume.image));
      const fs = statfsSync(this.layout.root);
      const free = fs.bavail * fs.bsize;
      if (promised > free) {
        this.log.warn({ promisedBytes: promised, hostFreeBytes: free }, 'the storage limits of the mounted instances exceed the free space of the host disk');
      }
    })().catch(() => undefined);
  }

  /**
   * Unmounts the instance's image (its processes have ended) and, with `deleteData`, deletes the image, the
   * mount point and DATA_DIR's link. Returns the host bytes freed.
   */
  detach(service: string, id: string, deleteData: boolean): Promise<number> {
    const key = `${service}:${id}`;
    return this.withLock(key, async () => {
      const image = this.layout.image(service, id);
      const volume = this.mounted.get(key) ?? {
        service,
        id,
        key,
        image,
        mountPoint: this.layout.mountPoint(service, id),
        device: '',
        imageBytes: 0,
        warning: null,
      };
      return this.release(volume, deleteData);
    });
  }

  private async release(volume: Volume, deleteData: boolean): Promise<number> {
    if (this.currentMounts().has(volume.mountPoint)) {
      const how = await unmount(volume.mountPoint);
      if (how === 'detached') this.log.warn({ instance: volume.key }, 'its mount was busy and was detached lazily');
    }
    this.mounted.delete(volume.key);
    if (!deleteData) return 0;
    const freed = await allocatedBytes(volume.image);
    await rm(volume.image, { force: true });
    // Never recursive: once unmounted the mount point is an empty folder; anything else is not ours to delete.
    await rmdir(volume.mountPoint).catch(() => undefined);
    const dataDir = this.instanceDir(volume.service, volume.id);
    const link = await lstat(dataDir).catch(() => null);
    if (link?.isSymbolicLink()) await unlink(dataDir).catch(() => undefined);
    return freed;
  }
}
