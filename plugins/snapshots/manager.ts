/**
 * Named snapshots (`ten snapshot`, docs/snapshots.md): take, list, restore and delete. A snapshot is the CRIU image
 * of the running instance and a copy of its DATA_DIR made while CRIU holds the process frozen (`--leave-running`
 * with the copy at the `post-dump` action), so the two are of one instant; the instance runs on afterwards. A
 * restore stops the running copy, and the next spawn of the instance (the wake path: one per herd, requests held)
 * puts DATA_DIR back and restores the image; when the image fails it starts cold on the restored DATA_DIR.
 */
import { chmodSync, existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { InstanceView } from '../../core/instance.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { SpawnSpec } from '../../core/types.ts';
import { copyTree, pack, unpack } from './archive.ts';
import { dumpInstance, usesIoUring } from './dump.ts';
import { imageDir, readMetaText, removeImage } from './images.ts';
import {
  ARCHIVE,
  checkSnapshotName,
  emptyFolder,
  findSnapshot,
  instanceSnapshots,
  listSnapshots,
  makeRoom,
  publish,
  removeScratch,
  scratch,
  treeBytes,
  writeSnapshotMeta,
  type SnapshotMeta,
} from './named.ts';
import { SNAPSHOT_DEFAULTS } from './schema.ts';

/** What the API shows of a snapshot. */
export interface SnapshotView {
  name: string;
  service: string;
  id: string;
  createdAt: string;
  bytes: number;
  rawBytes: number;
  imageBytes: number;
  dataBytes: number;
  dumpMs: number;
  frozenMs: number;
  packMs: number;
}

export const viewOf = (meta: SnapshotMeta): SnapshotView => ({
  name: meta.name,
  service: meta.service,
  id: meta.id,
  createdAt: new Date(meta.createdAt).toISOString(),
  bytes: meta.bytes,
  rawBytes: meta.rawBytes,
  imageBytes: meta.imageBytes,
  dataBytes: meta.dataBytes,
  dumpMs: meta.dumpMs,
  frozenMs: meta.frozenMs,
  packMs: meta.packMs,
});

/** A restore waiting for the instance's next spawn: the snapshot unpacked, and who to tell how it went. */
export interface PendingRestore {
  name: string;
  work: string;
  image: SnapshotMeta['image'];
  settle(outcome: RestoreOutcome): void;
}

export interface RestoreOutcome {
  /** True when the process came back from the image; false when it started cold (DATA_DIR restored all the same). */
  restored: boolean;
  reason: string | null;
  restoreMs: number;
}

/** The uid and gid a process runs as, when all four of each agree. */
function credentialsOf(pid: number): { uid: number; gid: number } | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n');
    const ids = (prefix: string): number[] => status.find((l) => l.startsWith(prefix))?.slice(prefix.length).trim().split(/\s+/).map(Number) ?? [];
    const uids = ids('Uid:');
    const gids = ids('Gid:');
    if (uids.length !== 4 || gids.length !== 4 || !uids.every((u) => u === uids[0]) || !gids.every((g) => g === gids[0])) return null;
    return { uid: uids[0]!, gid: gids[0]! };
  } catch {
    return null;
  }
}

/** A default name: the time it was taken, `YYYYMMDD-HHMMSS-mmm` in UTC. */
function defaultName(now: number): string {
  return new Date(now).toISOString().replace(/[-:]/g, '').replace('T', '-').replace('.', '-').replace('Z', '');
}

export class NamedSnapshots {
  /** Restores waiting for their instance's next spawn, by instance key. */
  readonly pending = new Map<string, PendingRestore>();
  /** One operation at a time per instance (a create and a restore of one instance never interleave). */
  private readonly locks = new Map<string, Promise<unknown>>();

  constructor(
    private readonly ctx: PluginContext,
    /** Why a service's instances cannot be saved, or null. */
    private readonly refusal: (service: string) => string | null,
    private readonly criuProblem: () => Promise<string | null>,
  ) {}

  private get dataDir(): string {
    return this.ctx.paths.dataDir;
  }

  private limits(service: string): { keep: number; maxBytes: number } {
    return this.ctx.services.get(service)?.snapshots ?? SNAPSHOT_DEFAULTS;
  }

  private folder(service: string, id: string): string {
    return instanceSnapshots(this.dataDir, service, id);
  }

  private serial<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(key) ?? Promise.resolve();
    const next = previous.then(work, work);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(key, tail);
    void tail.then(() => {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    });
    return next;
  }

  private instance(service: string, id: string): InstanceView {
    const instance = this.ctx.instances.get(service, id);
    if (!instance) throw new TenementError(ErrorCodes.UNKNOWN_INSTANCE, `unknown instance '${service}:${id}'`);
    return instance;
  }

  private supported(instance: InstanceView): void {
    const why = this.refusal(instance.service);
    if (why) throw new TenementError(ErrorCodes.CONFLICT, `${instance.key} cannot be snapshotted: ${why}`);
  }

  list(service: string, id: string): SnapshotView[] {
    this.instance(service, id);
    return listSnapshots(this.folder(service, id)).map(viewOf);
  }

  create(service: string, id: string, requested: string | undefined): Promise<SnapshotView> {
    const instance = this.instance(service, id);
    this.supported(instance);
    const name = requested === undefined ? defaultName(Date.now()) : checkSnapshotName(requested);
    return this.serial(instance.key, async () => {
      const handle = instance.handle;
      if (instance.state !== 'running' || !handle || handle.pid === null) {
        throw new TenementError(ErrorCodes.CONFLICT, `${instance.key} is ${instance.state}: only a running instance can be snapshotted (start it first)`);
      }
      const problem = await this.criuProblem();
      if (problem) throw new TenementError(ErrorCodes.PLUGIN_UNAVAILABLE, `snapshots need CRIU: ${problem}`);
      const dir = this.folder(service, id);
      if (findSnapshot(dir, name)) throw new TenementError(ErrorCodes.CONFLICT, `${instance.key} already has a snapshot named '${name}' (delete it first)`);
      const pid = handle.pid;
      // A property of the app, not a failure of the server: said as a conflict before CRIU is run.
      if (usesIoUring(pid)) throw new TenementError(ErrorCodes.CONFLICT, `${instance.key} cannot be snapshotted: the process uses io_uring (libuv in Node >= 22 does), which CRIU cannot checkpoint`);
      const credentials = credentialsOf(pid);
      const dataDir = this.ctx.paths.instanceDir(service, id);
      // What a server that stopped mid-way left (operations on this instance are serialized: none runs now).
      removeScratch(dir);
      const work = scratch(this.dataDir, dir, 'new');
      try {
        let thawedAt = 0;
        const started = Date.now();
        const image = await dumpInstance(
          { service, id, pid, host: handle.address.host, port: handle.address.port, user: credentials && credentials.uid !== 0 ? credentials : null },
          path.join(work, 'image'),
          async () => {
            // Within the action script's minute, so a copy too slow fails here rather than racing CRIU's thaw.
            await copyTree(dataDir, path.join(work, 'data'), 50_000);
            thawedAt = Date.now();
          },
        ).catch((error: Error) => {
          throw new TenementError(ErrorCodes.SNAPSHOT_FAILED, `snapshot of ${instance.key} failed (it runs on): ${error.message}`);
        });
        const dumpMs = Date.now() - started;
        const dataBytes = treeBytes(path.join(work, 'data'));
        const packStarted = Date.now();
        await pack(work, ['image', 'data'], path.join(work, ARCHIVE)).catch((error: Error) => {
          throw new TenementError(ErrorCodes.SNAPSHOT_FAILED, `snapshot of ${instance.key} could not be packed (it runs on): ${error.message}`);
        });
        chmodSync(path.join(work, ARCHIVE), 0o600);
        const packMs = Date.now() - packStarted;
        rmSync(path.join(work, 'image'), { recursive: true, force: true });
        rmSync(path.join(work, 'data'), { recursive: true, force: true });
        const bytes = treeBytes(work);
        const field = `services.${service}.snapshots`;
        const pruned = makeRoom(dir, bytes, this.limits(service), field);
        const meta: SnapshotMeta = {
          name,
          service,
          id,
          uid: image.uid,
          createdAt: started,
          bytes,
          rawBytes: image.bytes + dataBytes,
          imageBytes: image.bytes,
          dataBytes,
          dumpMs,
          // An upper bound: CRIU seizes the tree shortly after it starts and thaws it once the copy is done.
          frozenMs: thawedAt - started,
          packMs,
          image,
        };
        writeSnapshotMeta(work, meta);
        publish(work, dir, name);
        this.ctx.log.info({ instance: instance.key, snapshot: name, bytes, rawBytes: meta.rawBytes, dumpMs, packMs, pruned: pruned.map((p) => p.name) }, 'snapshot taken');
        return viewOf(meta);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    });
  }

  delete(service: string, id: string, name: string): Promise<SnapshotView> {
    const instance = this.instance(service, id);
    checkSnapshotName(name);
    return this.serial(instance.key, async () => {
      const dir = this.folder(service, id);
      const meta = findSnapshot(dir, name);
      if (!meta) throw new TenementError(ErrorCodes.NOT_FOUND, `${instance.key} has no snapshot named '${name}'`);
      rmSync(path.join(dir, name), { recursive: true, force: true });
      this.ctx.log.info({ instance: instance.key, snapshot: name }, 'snapshot deleted');
      return viewOf(meta);
    });
  }

  restore(service: string, id: string, name: string): Promise<RestoreOutcome & { snapshot: SnapshotView; state: string }> {
    const instance = this.instance(service, id);
    this.supported(instance);
    checkSnapshotName(name);
    return this.serial(instance.key, async () => {
      const dir = this.folder(service, id);
      const meta = findSnapshot(dir, name);
      if (!meta) throw new TenementError(ErrorCodes.NOT_FOUND, `${instance.key} has no snapshot named '${name}'`);
      if (meta.service !== service || meta.id !== id || meta.image.service !== service || meta.image.id !== id) {
        throw new TenementError(ErrorCodes.CONFLICT, `snapshot '${name}' is of ${meta.image.service}:${meta.image.id}, not ${instance.key}: refused`);
      }
      // Unpacked before anything stops: an unreadable archive leaves the running copy alone.
      removeScratch(dir);
      const work = scratch(this.dataDir, dir, 'restore');
      try {
        let image: SnapshotMeta['image'];
        try {
          await unpack(path.join(dir, name, ARCHIVE), work);
          image = readMetaText(readFileSync(path.join(work, 'image', 'meta.json'), 'utf8'));
          if (!existsSync(path.join(work, 'data'))) throw new Error('it holds no DATA_DIR');
        } catch (error) {
          throw new TenementError(ErrorCodes.SNAPSHOT_FAILED, `snapshot '${name}' of ${instance.key} cannot be restored (the instance was left as it was): ${(error as Error).message}`);
        }
        this.forget(instance.key);
        const outcome = new Promise<RestoreOutcome>((settle) => this.pending.set(instance.key, { name, work, image, settle }));
        // Whatever the instance was saved as at its last suspension is older than what was asked for.
        removeImage(imageDir(this.dataDir, service, id));
        // A restart stops the running copy as a plain stop (a suspending service is not dumped on the way) and
        // starts it again: the start is the spawn that restores. Requests meanwhile wait in the wake queue.
        await this.ctx.lifecycle.restart(instance, `restoring snapshot '${name}'`);
        const pending = this.pending.get(instance.key);
        if (pending?.work === work) {
          // The spawn did not reach the process tier's spawn (refused before it): nothing was restored.
          this.forget(instance.key);
          throw new TenementError(ErrorCodes.SNAPSHOT_FAILED, `${instance.key} did not start, so snapshot '${name}' was not restored: ${instance.lastError ?? instance.state}`);
        }
        const result = await outcome;
        return { ...result, snapshot: viewOf(meta), state: this.ctx.instances.get(service, id)?.state ?? 'removed' };
      } finally {
        // A restart that failed before the spawn leaves the restore waiting: its files go now, so it must go too.
        if (this.pending.get(instance.key)?.work === work) this.forget(instance.key);
        rmSync(work, { recursive: true, force: true });
      }
    });
  }

  /**
   * The spawn tap's part (the wake path): the restore waiting for this instance, if any, with DATA_DIR already
   * put back (emptied, then the snapshot's copy: owners, modes and all). A DATA_DIR that cannot be put back
   * fails the start: the app never runs on half its data.
   */
  async takePending(spec: SpawnSpec): Promise<PendingRestore | undefined> {
    const key = `${spec.service}:${spec.id}`;
    const pending = this.pending.get(key);
    if (!pending) return undefined;
    this.pending.delete(key);
    const copy = path.join(pending.work, 'data');
    if (!existsSync(copy)) {
      // Never empty a DATA_DIR without the copy to put in its place.
      pending.settle({ restored: false, reason: 'the unpacked snapshot is gone', restoreMs: 0 });
      return undefined;
    }
    try {
      emptyFolder(spec.dataDir);
      // `data/.`: its content and its own owner and mode (path.join would drop the `.` and copy the folder in).
      await copyTree(`${copy}/.`, spec.dataDir);
    } catch (error) {
      const reason = `DATA_DIR could not be put back: ${(error as Error).message}`;
      pending.settle({ restored: false, reason, restoreMs: 0 });
      throw new TenementError(ErrorCodes.SPAWN_FAILED, `restoring snapshot '${pending.name}' of ${key}: ${reason}`);
    }
    return pending;
  }

  private forget(key: string): void {
    const pending = this.pending.get(key);
    if (!pending) return;
    this.pending.delete(key);
    pending.settle({ restored: false, reason: 'replaced by another restore', restoreMs: 0 });
  }

  /** With the instance: its snapshots, and a restore still waiting for it. */
  removed(service: string, id: string): void {
    this.forget(`${service}:${id}`);
    let dir: string;
    try {
      dir = this.folder(service, id);
    } catch {
      return;
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
