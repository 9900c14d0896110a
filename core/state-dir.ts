import { chmodSync, lstatSync, mkdirSync, readdirSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TenementError, errorMessage } from './errors.ts';
import type { Logger } from './logger.ts';
import { Store } from './store.ts';

/**
 * The state directory holds what tenants must never read: the database (every tenant's log lines, the audit
 * log, token hashes) and the admin token. Files are 0600. Folders are 0700, except the ones a tenant uid has to
 * walk through to reach its own DATA_DIR (`{dataDir}/instances/{service}/{id}`) when Tenement is root: those
 * are 0711, searchable but not listable, so a tenant reaches its own folder by its path and learns nothing of
 * the others (not even their names). Without root, tenants run as Tenement's own uid and 0700 holds throughout.
 */
export const STATE_FILES = ['tenement.db', 'tenement.db-wal', 'tenement.db-shm', 'tenement.db-journal', 'admin.token'] as const;
export const STATE_FILE_MODE = 0o600;

/**
 * Top-level folders a tenant uid has to pass through: `instances` (its DATA_DIR), `.storage` (its storage mount
 * under `.storage/mnt`), `.microvm` (the guest images QEMU reads as that uid). Each keeps the modes its owner
 * gives it; every other folder in the data dir is Tenement's alone (`wasm-cache`, `.sandbox`, a plugin's own)
 * and is 0700, unless a service's `cwd` lies inside it.
 */
export const TENANT_PASSAGES: ReadonlySet<string> = new Set(['instances', '.storage', '.microvm']);

/** Mode of the data dir, `instances/` and each service folder in it. */
export function passageMode(asRoot = process.getuid?.() === 0): number {
  return asRoot ? 0o711 : 0o700;
}

const octal = (mode: number): string => `0${(mode & 0o7777).toString(8).padStart(3, '0')}`;

function lstatOrNull(file: string): Stats | null {
  try {
    return lstatSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/**
 * Sets `dir` to exactly `mode`. Looser than that (any bit the target lacks) is worth a warning naming the path
 * and the old mode; tighter (0700 where tenants must pass) is simply opened up to what they need.
 */
function sealDir(dir: string, mode: number, log: Logger, follow: boolean): void {
  const info = follow ? statSync(dir) : lstatSync(dir);
  if (!info.isDirectory()) return;
  const current = info.mode & 0o7777;
  if (current === mode) return;
  if ((current & ~mode) !== 0) {
    log.warn({ path: dir, mode: octal(current), fixed: octal(mode) }, 'state directory was open to other users: tightened');
  }
  chmodSync(dir, mode);
}

/** Makes every state file that exists 0600, warning about each that was looser. Symlinks are never followed. */
export function sealStateFiles(dataDir: string, log: Logger): void {
  for (const name of STATE_FILES) {
    const file = path.join(dataDir, name);
    const info = lstatOrNull(file);
    if (!info) continue;
    if (!info.isFile()) {
      // chmod would act on whatever a link points to; a state file is never a link, so say so and leave it.
      log.warn({ path: file }, 'state file is not a regular file: left alone (Tenement creates it as a file)');
      continue;
    }
    const current = info.mode & 0o7777;
    if ((current & ~STATE_FILE_MODE) === 0) continue;
    log.warn({ path: file, mode: octal(current), fixed: octal(STATE_FILE_MODE) }, 'state file was readable by other users: tightened');
    chmodSync(file, STATE_FILE_MODE);
  }
}

/** What the sealing needs to know of a service: its name (the map key) and its resolved `cwd`. */
export type SealedServices = Readonly<Record<string, { cwd?: string | undefined }>>;

/** The top-level folders of the data dir that hold a service's cwd (an unusual layout bwrap-args supports). */
function cwdPassages(dataDir: string, services: SealedServices): Set<string> {
  const passages = new Set<string>();
  for (const service of Object.values(services)) {
    if (!service.cwd) continue;
    const relative = path.relative(path.resolve(dataDir), path.resolve(service.cwd));
    const top = relative.split(path.sep)[0];
    if (top && top !== '..' && !path.isAbsolute(relative)) passages.add(top);
  }
  return passages;
}

/**
 * Creates the data dir when it is new and seals it: modes of the root, `instances/` and its service folders
 * (created now for every configured service, so none is born with the umask's 0755), the other top-level
 * folders (0700), and the state files.
 */
export function sealStateDir(dataDir: string, services: SealedServices, log: Logger): void {
  const passage = passageMode();
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    // The data dir itself may be a link the operator made (e.g. to a bigger disk): its target is sealed.
    sealDir(dataDir, passage, log, true);
    const own = statSync(dataDir).uid;
    if (process.getuid && own !== process.getuid()) {
      log.warn({ path: dataDir, owner: own }, 'the data dir belongs to another user, who can change anything in it');
    }
    const instances = path.join(dataDir, 'instances');
    mkdirSync(instances, { recursive: true, mode: 0o700 });
    sealDir(instances, passage, log, true);
    for (const service of Object.keys(services)) mkdirSync(path.join(instances, service), { recursive: true, mode: 0o700 });
    for (const entry of readdirSync(instances, { withFileTypes: true })) {
      // A service folder only: what is inside belongs to the tenants (each DATA_DIR is theirs, 0700).
      if (entry.isDirectory()) sealDir(path.join(instances, entry.name), passage, log, false);
    }
    const passages = cwdPassages(dataDir, services);
    for (const entry of readdirSync(dataDir, { withFileTypes: true })) {
      if (!entry.isDirectory() || TENANT_PASSAGES.has(entry.name) || passages.has(entry.name)) continue;
      sealDir(path.join(dataDir, entry.name), 0o700, log, false);
    }
    sealStateFiles(dataDir, log);
  } catch (error) {
    throw new TenementError(ErrorCodes.STORE, `cannot seal the data dir ${dataDir}: ${errorMessage(error)}`, { cause: error });
  }
}

/**
 * What in the data dir shows that a server ran here before (the admin token, an instance's DATA_DIR), or null.
 * A database that is empty next to such state was truncated or replaced, not new.
 */
export function priorState(dataDir: string): string | null {
  if (lstatOrNull(path.join(dataDir, 'admin.token'))) return `${path.join(dataDir, 'admin.token')} exists`;
  const instances = path.join(dataDir, 'instances');
  let services: string[];
  try {
    services = readdirSync(instances);
  } catch {
    return null;
  }
  for (const service of services) {
    let ids: string[] = [];
    try {
      ids = readdirSync(path.join(instances, service));
    } catch {
      continue;
    }
    if (ids.length > 0) return `instance data exists (${path.join(instances, service, ids[0]!)})`;
  }
  return null;
}

/** The kernel's store, opened in a sealed data dir: modes checked and fixed first, files 0600 once SQLite made them. */
export function openSealedStore(dataDir: string, services: SealedServices, log: Logger): Store {
  sealStateDir(dataDir, services, log);
  const store = new Store(path.join(dataDir, 'tenement.db'), { priorState: priorState(dataDir) });
  sealStateFiles(dataDir, log);
  return store;
}
