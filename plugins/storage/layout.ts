import { mkdirSync, realpathSync } from 'node:fs';
import path from 'node:path';

/**
 * Where the storage plugin keeps its files, inside Tenement's data directory but outside every instance's
 * DATA_DIR (the namespace tier hides the whole data directory except DATA_DIR, so tenants never see them):
 *
 *   {dataDir}/.storage/images/<service>/<id>.img   the sparse ext4 image (0700 folders: root only)
 *   {dataDir}/.storage/mnt/<service>/<id>          where it is mounted (0711 folders: the tenant uid walks through)
 *   {dataDir}/.storage/retention.json              removed instances whose data is deleted later
 *   {dataDir}/instances/<service>/<id>             DATA_DIR: a symlink to the mount point
 *
 * DATA_DIR is a symlink rather than the mount point itself so that removing an instance never races its mount:
 * the kernel deletes DATA_DIR (keepData: false) with a recursive rm, which on a mount point fails with EBUSY;
 * on the symlink it just unlinks it, and this plugin then unmounts and deletes the image.
 */
export class StorageLayout {
  readonly root: string;
  readonly imagesRoot: string;
  readonly mountsRoot: string;
  readonly retentionFile: string;

  constructor(readonly dataDir: string) {
    mkdirSync(dataDir, { recursive: true });
    // mountinfo shows real paths: resolve symlinks in the data dir (e.g. a /tmp that is a link) once.
    const real = realpathSync(dataDir);
    this.root = path.join(real, '.storage');
    this.imagesRoot = path.join(this.root, 'images');
    this.mountsRoot = path.join(this.root, 'mnt');
    this.retentionFile = path.join(this.root, 'retention.json');
    mkdirSync(this.root, { recursive: true, mode: 0o711 });
    mkdirSync(this.imagesRoot, { recursive: true, mode: 0o700 });
    mkdirSync(this.mountsRoot, { recursive: true, mode: 0o711 });
  }

  image(service: string, id: string): string {
    return path.join(this.imagesRoot, service, `${id}.img`);
  }

  mountPoint(service: string, id: string): string {
    return path.join(this.mountsRoot, service, id);
  }

  /** The instance a mount point belongs to, or null when the path is not one of ours. */
  instanceOfMountPoint(mountPoint: string): { service: string; id: string } | null {
    const relative = path.relative(this.mountsRoot, mountPoint);
    const parts = relative.split(path.sep);
    if (relative.startsWith('..') || parts.length !== 2 || !parts[0] || !parts[1]) return null;
    return { service: parts[0], id: parts[1] };
  }
}
