import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { mkdir, open, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import { loopBackingFile, readMounts } from './mountinfo.ts';

/** Programs the storage limit needs besides mount/umount (util-linux, always there). */
const TOOLS = { mkfs: 'mkfs.ext4', resize: 'resize2fs', fsck: 'e2fsck', losetup: 'losetup' } as const;
const SEARCH_PATH = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/local/bin', '/usr/bin', '/bin'];

export type Ext4Tools = Record<keyof typeof TOOLS, string>;

function findTool(name: string): string | null {
  const dirs = [...new Set([...(process.env.PATH ?? '').split(':').filter(Boolean), ...SEARCH_PATH])];
  for (const dir of dirs) {
    try {
      accessSync(path.join(dir, name), constants.X_OK);
      return path.join(dir, name);
    } catch {
      // Not here.
    }
  }
  return null;
}

/** The tools, or why this host cannot enforce `limits.storage` and how to fix it. */
export function findExt4Tools(): { tools: Ext4Tools } | { problem: string } {
  if (process.getuid?.() !== 0) {
    return { problem: 'limits.storage loop-mounts an ext4 image per instance, which needs Tenement to run as root (CAP_SYS_ADMIN for mount)' };
  }
  if (!canUseLoop()) {
    return { problem: 'limits.storage needs loop devices (/dev/loop-control; kernel CONFIG_BLK_DEV_LOOP, or modprobe loop)' };
  }
  const found: Partial<Ext4Tools> = {};
  const missing: string[] = [];
  for (const [key, name] of Object.entries(TOOLS) as Array<[keyof Ext4Tools, string]>) {
    const where = findTool(name);
    if (where) found[key] = where;
    else missing.push(name);
  }
  if (missing.length > 0) {
    const pkg = missing.includes('losetup') ? 'apt-get install e2fsprogs util-linux' : 'apt-get install e2fsprogs';
    return { problem: `limits.storage needs ${missing.join(', ')}, not found on PATH: ${pkg}` };
  }
  return { tools: found as Ext4Tools };
}

function canUseLoop(): boolean {
  try {
    accessSync('/dev/loop-control', constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/** Runs a program; a failure carries its stderr (what mkfs or mount said), not just the exit code. */
export function run(program: string, args: readonly string[], okCodes: readonly number[] = [0]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(program, args, { timeout: 120_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      if (!error || (typeof error.code === 'number' && okCodes.includes(error.code))) return resolve(stdout);
      const said = (stderr || stdout).trim().split('\n').slice(-3).join(' / ');
      reject(new Error(`${path.basename(program)} ${args.join(' ')}: ${said || error.message}`));
    });
  });
}

/** A sparse file of `bytes` (holes cost nothing on the host until written) with a fresh ext4 in it. */
export async function createImage(tools: Ext4Tools, image: string, bytes: number): Promise<void> {
  await mkdir(path.dirname(image), { recursive: true, mode: 0o700 });
  await (await open(image, 'wx', 0o600)).close();
  await truncate(image, bytes);
  // -m 0: no blocks reserved for root (the tenant is never root, so 5% would be lost); -F: it is a file, not a
  // block device; lazy inode tables (the default) keep mkfs at a few milliseconds.
  await run(tools.mkfs, ['-q', '-F', '-m', '0', image]);
}

/**
 * Mounts the image on `mountPoint` through a loop device (`-o loop` attaches one with autoclear, so unmounting
 * also frees it). nosuid and nodev: a tenant's files never grant privileges or reach devices on the host.
 */
export async function mountImage(image: string, mountPoint: string): Promise<void> {
  await mkdir(mountPoint, { recursive: true, mode: 0o700 });
  await run('mount', ['-t', 'ext4', '-o', 'loop,nosuid,nodev,noatime', image, mountPoint]);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The loop device mounted on `mountPoint`, from mountinfo (null when nothing or no loop device is there). */
function loopDeviceAt(mountPoint: string): string | null {
  const source = readMounts().filter((entry) => entry.mountPoint === mountPoint).pop()?.source ?? null;
  return source && /^\/dev\/loop\d+$/.test(source) ? source : null;
}

/**
 * Waits until an autoclear loop device has let go of its file (the kernel detaches it shortly after the last
 * unmount, not during it), then detaches it by hand if it still has not. This matters: `mount -o loop` reuses a
 * loop device that is still bound to the same file, and that device's cache holds the file system as it was
 * before an offline resize, so a remount would see the old size.
 */
async function waitLoopReleased(losetup: string, device: string, image: string): Promise<void> {
  const bound = (): boolean => loopBackingFile(device) === image;
  for (let waited = 0; waited < 1_000 && bound(); waited += 10) await sleep(10);
  if (bound()) await run(losetup, ['-d', device]).catch(() => undefined);
}

/**
 * Unmounts, retrying while something still holds it (a process that is just ending); as a last resort detaches
 * it lazily, so the mount point is free at once and the loop device goes when its last user does. With
 * `release`, also waits for the loop device to let go of the image (needed before the image is resized).
 */
export async function unmount(mountPoint: string, release?: { losetup: string; image: string }): Promise<'unmounted' | 'detached'> {
  const device = loopDeviceAt(mountPoint);
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await run('umount', [mountPoint]);
      if (release && device) await waitLoopReleased(release.losetup, device, release.image);
      return 'unmounted';
    } catch (error) {
      if (!/busy/i.test((error as Error).message)) throw error;
      await sleep(50 * (attempt + 1));
    }
  }
  await run('umount', ['-l', mountPoint]);
  return 'detached';
}

/**
 * Resizes an unmounted image to `bytes`, after the full check resize2fs insists on. Offline on purpose: ext4's
 * online grow (EXT4_IOC_RESIZE_FS) needs CAP_SYS_RESOURCE, which root does not have on these machines
 * ("Permission denied to resize filesystem"), and shrinking is offline-only anyway. resize2fs refuses, and
 * changes nothing, when the data does not fit; the file then gets its old size back.
 */
export async function resizeImage(tools: Ext4Tools, image: string, fromBytes: number, bytes: number): Promise<void> {
  // Exit code 1: problems found and fixed, which is still a clean file system to resize.
  await run(tools.fsck, ['-f', '-p', image], [0, 1]);
  if (bytes > fromBytes) await truncate(image, bytes);
  try {
    await run(tools.resize, [image, `${Math.floor(bytes / 1024)}K`]);
  } catch (error) {
    if (bytes > fromBytes) await truncate(image, fromBytes).catch(() => undefined);
    throw error;
  }
  if (bytes < fromBytes) await truncate(image, bytes);
}

/** Bytes the image takes on the host (it is sparse: far less than its size until written). */
export async function allocatedBytes(file: string): Promise<number> {
  try {
    return (await stat(file)).blocks * 512;
  } catch {
    return 0;
  }
}
