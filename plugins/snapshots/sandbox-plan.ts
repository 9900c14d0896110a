/**
 * What CRIU must be told about a namespace-tier sandbox (bwrap) that it cannot find out itself, read from /proc
 * just before the dump (docs/snapshots.md, "The namespace tier"):
 * - the files the tree holds from outside its mount namespace: bwrap's init still maps /usr/bin/bwrap and its
 *   libraries from the host's root (it forked before pivot_root), and stdin is the host's /dev/null. CRIU dumps
 *   them as `--external file[mnt_id:inode]`; a restore hands the same host files back with `--inherit-fd`.
 * - the layout of the sandbox's root (bwrap's tmpfs: the folders and links its mounts sit on). CRIU does not save
 *   a root mount's content: a restore rebuilds it as a folder and gives it as `--root`.
 */
import { constants, openSync, closeSync, existsSync, fstatSync, readFileSync, readdirSync, readlinkSync, statSync, type BigIntStats, type Dirent } from 'node:fs';
import path from 'node:path';
import { descendants } from '../../core/process/group.ts';

export interface ExternalFile {
  /** CRIU's key: `file[<mnt_id hex>:<inode hex>]`. */
  key: string;
  /** The host path it was opened or mapped from. */
  path: string;
}

export interface RootEntry {
  /** Relative to the sandbox's root, without a leading slash. */
  path: string;
  kind: 'dir' | 'file' | 'link';
  target?: string;
}

export interface SandboxPlan {
  files: ExternalFile[];
  root: RootEntry[];
}

const MAX_FILES = 512;
const MAX_ROOT_ENTRIES = 2000;
const MAX_DEPTH = 16;

/** bwrap's init: the leader's only child, pid 1 of the sandbox's pid namespace; null when there is none. */
export function sandboxInit(leader: number): number | null {
  const init = descendants(leader)[0];
  if (init === undefined) return null;
  return nsPids(init).at(-1) === 1 ? init : null;
}

/** The pids of `pid` in each pid namespace it is in, the host's first (`NSpid:`); [] when it is gone. */
export function nsPids(pid: number): number[] {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('NSpid:'));
    return line?.slice(6).trim().split(/\s+/).map(Number) ?? [];
  } catch {
    return [];
  }
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
const unescape = (field: string): string => field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));

function mounts(pid: number): { ids: Set<number>; points: Set<string> } {
  const ids = new Set<number>();
  const points = new Set<string>();
  for (const line of readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 5) continue;
    ids.add(Number(fields[0]));
    points.add(unescape(fields[4]!));
  }
  return { ids, points };
}

const mntIdOf = (fdinfo: string): number | null => {
  const match = /^mnt_id:\s*(\d+)$/m.exec(fdinfo);
  return match ? Number(match[1]) : null;
};

const DEV_NULL = { major: 1, minor: 3 };

/**
 * Whether a host file may be handed back to a restored sandbox: a restore opens it again as root, so only what
 * bwrap's own start gives every sandbox qualifies (a root-owned file nobody else may write: bwrap and its
 * libraries; the host's /dev/null). Anything else a tenant came to hold from outside (a file passed over a
 * socket) is refused at the dump: the instance is stopped instead.
 */
export function handBackable(info: BigIntStats): boolean {
  if (info.isCharacterDevice()) return Number(info.rdev >> 8n) === DEV_NULL.major && Number(info.rdev & 0xffn) === DEV_NULL.minor;
  return info.isFile() && info.uid === 0n && (info.mode & 0o022n) === 0n;
}

/** Every file of the tree opened or mapped from a mount that is not in its mount namespace. */
function externalFiles(pids: readonly number[], inside: Set<number>): ExternalFile[] {
  const found = new Map<string, string>();
  const add = (mntId: number | null, info: BigIntStats, file: string): void => {
    if (mntId === null || inside.has(mntId) || !file.startsWith('/')) return;
    if (!handBackable(info)) throw new Error(`the sandbox holds ${file} from outside it, which is not a root-owned system file`);
    if (found.size >= MAX_FILES) throw new Error(`the sandbox holds more than ${MAX_FILES} files from outside it`);
    found.set(`file[${mntId.toString(16)}:${info.ino.toString(16)}]`, file);
  };
  for (const pid of pids) {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (!link.startsWith('/')) continue;
        add(mntIdOf(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8')), statSync(`/proc/${pid}/fd/${fd}`, { bigint: true }), link);
      } catch (error) {
        // Closed meanwhile (a refusal is rethrown).
        if (!existsSync(`/proc/${pid}/fd/${fd}`)) continue;
        throw error;
      }
    }
    for (const range of readdirSync(`/proc/${pid}/map_files`)) {
      const file = `/proc/${pid}/map_files/${range}`;
      let fd: number;
      try {
        fd = openSync(file, 'r');
      } catch {
        continue;
      }
      try {
        add(mntIdOf(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')), fstatSync(fd, { bigint: true }), readlinkSync(file));
      } finally {
        closeSync(fd);
      }
    }
  }
  return [...found].map(([key, file]) => ({ key, path: file }));
}

/** The folders, links and mount points of the sandbox's root file system, not what is mounted on them. */
function rootLayout(init: number, points: Set<string>): RootEntry[] {
  const base = `/proc/${init}/root`;
  const entries: RootEntry[] = [];
  const walk = (rel: string, depth: number): void => {
    if (depth > MAX_DEPTH) throw new Error(`the sandbox's root is deeper than ${MAX_DEPTH} folders`);
    let children: Dirent[];
    try {
      children = readdirSync(path.join(base, rel), { withFileTypes: true });
    } catch {
      return;
    }
    for (const child of children) {
      const rel2 = rel ? `${rel}/${child.name}` : child.name;
      if (entries.length >= MAX_ROOT_ENTRIES) throw new Error(`the sandbox's root has more than ${MAX_ROOT_ENTRIES} entries`);
      if (points.has(`/${rel2}`)) {
        entries.push({ path: rel2, kind: child.isDirectory() ? 'dir' : 'file' });
      } else if (child.isSymbolicLink()) {
        entries.push({ path: rel2, kind: 'link', target: readlinkSync(path.join(base, rel2)) });
      } else if (child.isDirectory()) {
        entries.push({ path: rel2, kind: 'dir' });
        walk(rel2, depth + 1);
      }
      // A plain file bwrap's root would hold is not made by bwrap: there is none to keep.
    }
  };
  walk('', 0);
  return entries;
}

/** Reads the plan of the sandbox whose init is `init` (its tree must not change meanwhile: run it before CRIU). */
export function sandboxPlan(init: number): SandboxPlan {
  const { ids, points } = mounts(init);
  return { files: externalFiles([init, ...descendants(init)], ids), root: rootLayout(init, points) };
}

const KEY = /^file\[[0-9a-f]{1,16}:[0-9a-f]{1,16}\]$/;

/**
 * Opens an external file of a plan again (as root, for `--inherit-fd`), only if it is still the file the dump
 * saw (same inode) and still one a sandbox may be handed: a path swapped meanwhile is never followed into.
 */
export function openExternal(file: ExternalFile): number {
  const fd = openSync(file.path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const info = fstatSync(fd, { bigint: true });
    const ino = /:([0-9a-f]+)\]$/.exec(file.key)?.[1];
    if (ino === undefined || info.ino !== BigInt(`0x${ino}`)) throw new Error(`${file.path} is not the file the dump saw`);
    if (!handBackable(info)) throw new Error(`${file.path} is not a root-owned system file`);
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/** A plan read back from an image, checked: keys CRIU's, paths absolute, root entries relative without `..`. */
export function parsePlan(text: string): SandboxPlan {
  const parsed: unknown = JSON.parse(text);
  if (!parsed || typeof parsed !== 'object') throw new Error('sandbox.json is not an object');
  const { files, root } = parsed as { files?: unknown; root?: unknown };
  if (!Array.isArray(files) || files.length > MAX_FILES) throw new Error('sandbox.json: bad files');
  if (!Array.isArray(root) || root.length > MAX_ROOT_ENTRIES) throw new Error('sandbox.json: bad root');
  for (const file of files as Array<Partial<ExternalFile>>) {
    if (typeof file?.key !== 'string' || !KEY.test(file.key) || typeof file.path !== 'string' || !path.isAbsolute(file.path)) {
      throw new Error('sandbox.json: bad external file');
    }
  }
  for (const entry of root as Array<Partial<RootEntry>>) {
    const rel = entry?.path;
    if (typeof rel !== 'string' || rel === '' || path.isAbsolute(rel) || rel.split('/').some((part) => part === '' || part === '.' || part === '..' || part.includes('\0'))) {
      throw new Error('sandbox.json: bad root entry');
    }
    if (entry.kind !== 'dir' && entry.kind !== 'file' && !(entry.kind === 'link' && typeof entry.target === 'string' && !entry.target.includes('\0'))) {
      throw new Error('sandbox.json: bad root entry');
    }
  }
  return { files: files as ExternalFile[], root: root as RootEntry[] };
}
