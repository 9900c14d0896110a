/**
 * Live migration with CRIU (docs/snapshots.md#migration), the snapshots plugin's side of the fleet's move:
 * - source: the `checkpoint` tap pre-dumps a running process-tier instance into `<dir>/pre` (memory copied while
 *   it keeps serving, `--track-mem`), then arms its next stop to be the final dump into `<dir>/final` (only pages
 *   dirtied since, `--prev-images-dir ../pre`). Images are root's, 0600.
 * - target: the `restoreCheckpoint` tap takes the images received into `<dataDir>/.migrations/<service>/<id>`; the
 *   instance's next spawn restores them (stage -49, after the fleet, before any runtime), checking they are this
 *   instance's and its uid's, and deletes them whatever happens. A restore that fails starts the instance cold.
 * Its TCP connections are saved and restored closed (`--tcp-close`): they are the old node's proxy's idle pooled
 * connections (no request is in flight at the dump) and a process on another host could not keep them anyway;
 * keeping them cost CRIU's network lock, two `iptables` runs per connection on each side (~20 ms each here).
 */
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { CheckpointOutcome, Checkpointer } from '../../core/hooks.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { descendants, signalGroup } from '../../core/process/group.ts';
import { prepareDataDir } from '../../core/process/tenant-user.ts';
import { findSetpriv } from '../../core/process/tenant-launch.ts';
import type { RunningHandle, SpawnSpec } from '../../core/types.ts';
import { criuPath } from './criu.ts';
import { logTail, usesIoUring } from './dump.ts';
import { discardLater, imageOwnerUid, readMeta, removeImage, writeMeta, type ImageMeta } from './images.ts';
import { restoreInstance } from './restore.ts';

const run = promisify(execFile);
const DUMP_CAPS = '+checkpoint_restore,+sys_ptrace,+dac_override,+sys_admin,+net_admin';

interface Live {
  pid: number;
  spec: SpawnSpec;
  host: string;
  port: number;
  armed: { dir: string; settle: (outcome: CheckpointOutcome) => void } | null;
}

/** Runs criu as the instance's uid (see dump.ts: root lacks what reading another uid's rlimits needs). */
async function criu(spec: SpawnSpec, args: string[]): Promise<void> {
  const user = spec.user;
  if (user && user.uid !== 0) {
    const setpriv = findSetpriv('process');
    await run(setpriv, [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', `--inh-caps=${DUMP_CAPS}`, `--ambient-caps=${DUMP_CAPS}`, criuPath(), ...args, '--unprivileged'], { timeout: 60_000 });
  } else {
    await run(criuPath(), args, { timeout: 60_000 });
  }
}

/** Every file root's and 0600, folders 0700; the `parent` link of a final dump stays. Returns the bytes. */
function sealTree(dir: string): number {
  let bytes = 0;
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    const info = lstatSync(file);
    if (info.isDirectory()) bytes += sealTree(file);
    else if (info.isFile()) {
      chownSync(file, 0, 0);
      chmodSync(file, 0o600);
      bytes += info.size;
    } else if (!(info.isSymbolicLink() && name === 'parent' && readlinkSync(file) === '../pre')) rmSync(file, { force: true });
  }
  chownSync(dir, 0, 0);
  chmodSync(dir, 0o700);
  return bytes;
}

/** A process-tier instance's file descriptors the dump treats as external (its output sockets, Tenement's). */
function externals(pid: number): { stdout: string; stderr: string; args: string[] } {
  const stdout = readlinkSync(`/proc/${pid}/fd/1`);
  const stderr = readlinkSync(`/proc/${pid}/fd/2`);
  const args = [stdout, stderr].flatMap((link) => {
    const socket = /^socket:\[(\d+)\]$/.exec(link);
    return socket ? ['--external', `unix[${socket[1]}]`] : [];
  });
  return { stdout, stderr, args };
}

function segment(name: string): string {
  if (!name || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) throw new Error(`not a usable name: ${JSON.stringify(name)}`);
  return name;
}

/** While the tenant's uid dumps (`--unprivileged`) it must write `final` and read `pre`; sealed root's after. */
function lend(dir: string, spec: SpawnSpec): void {
  if (!spec.user) return;
  for (const name of ['', ...readdirSync(dir)]) {
    const file = path.join(dir, name);
    if (lstatSync(file).isDirectory()) chownSync(file, spec.user.uid, spec.user.gid);
  }
}

export function setupMigration(ctx: PluginContext, criuProblem: () => Promise<string | null>): void {
  const live = new Map<string, Live>();
  // Pre-dumps need soft-dirty page tracking (CONFIG_MEM_SOFT_DIRTY): without it the final dump copies everything.
  let tracking: Promise<boolean> | null = null;
  const tracksMemory = (): Promise<boolean> =>
    (tracking ??= run(criuPath(), ['check', '--feature', 'mem_dirty_track'], { timeout: 30_000 }).then(
      () => true,
      () => false,
    ));
  const incoming = (service: string, id: string): string => path.join(ctx.paths.dataDir, '.migrations', segment(service), segment(id));
  const keyOf = (service: string, id: string): string => `${service}\0${id}`;
  // A fleet node may be the target of a live move at any time: `criu check` once now, not during a move's pause.
  if ((ctx.settings as { fleet?: unknown }).fleet !== undefined && process.getuid?.() === 0) void criuProblem();

  ctx.hooks.afterSpawn.tap(
    (handle: RunningHandle, spec: SpawnSpec): RunningHandle => {
      if (spec.tier !== 'process' || spec.netns || handle.pid === null || spec.config.listen === 'socket') return handle;
      const key = keyOf(spec.service, spec.id);
      const entry: Live = { pid: handle.pid, spec, host: handle.address.host, port: handle.address.port, armed: null };
      live.set(key, entry);
      return {
        ...handle,
        async stop(options) {
          if (live.get(key) === entry) live.delete(key);
          const armed = entry.armed;
          if (!armed) return handle.stop(options);
          entry.armed = null;
          armed.settle(await finalDump(entry, armed.dir));
          // Dumped, the process is gone and this reaps it; a suspend wrapper must not try to save it again.
          return handle.stop({ ...options, hibernating: false });
        },
      };
    },
    { stage: 50 },
  );

  const finalDump = async (entry: Live, dir: string): Promise<CheckpointOutcome> => {
    const started = Date.now();
    const final = path.join(dir, 'final');
    try {
      if (usesIoUring(entry.pid)) return { ok: false, reason: 'the process uses io_uring (libuv in Node >= 22 does), which CRIU cannot checkpoint' };
      const { stdout, stderr, args: external } = externals(entry.pid);
      rmSync(final, { recursive: true, force: true });
      mkdirSync(final, { mode: 0o700 });
      const user = entry.spec.user;
      lend(dir, entry.spec);
      const pre = existsSync(path.join(dir, 'pre', 'inventory.img')) ? ['--prev-images-dir', '../pre', '--track-mem'] : [];
      // Left stopped, killed here: CRIU's own kill waited for the 25 MB process's teardown (~7 ms quiet, more on a
      // loaded host) before it exited; this kill's teardown runs while the images are carried.
      try {
        await criu(entry.spec, ['dump', '-t', String(entry.pid), '-D', final, '-o', 'dump.log', '--tcp-close', '--leave-stopped', ...pre, ...external]);
      } catch (error) {
        return { ok: false, reason: `criu dump failed: ${logTail(path.join(final, 'dump.log')) || (error as Error).message}` };
      }
      const tree = descendants(entry.pid);
      signalGroup(entry.pid, 'SIGKILL');
      for (const pid of tree) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // Gone with its group.
        }
      }
      const bytes = sealTree(dir);
      const owner = user ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
      const meta: ImageMeta = { service: entry.spec.service, id: entry.spec.id, uid: owner.uid, gid: owner.gid, pid: entry.pid, host: entry.host, port: entry.port, stdout, stderr, dumpMs: Date.now() - started, bytes, at: Date.now() };
      writeMeta(final, meta);
      return { ok: true, bytes, dumpMs: meta.dumpMs };
    } catch (error) {
      return { ok: false, reason: (error as Error).message };
    }
  };

  ctx.hooks.checkpoint.tap(async ({ instance, dir }): Promise<Checkpointer | string | undefined> => {
    const key = keyOf(instance.service, instance.id);
    const entry = live.get(key);
    if (!entry) return instance.tier === 'process' ? undefined : `isolation '${instance.tier}' is not checkpointed: only the process tier's plain processes are`;
    const problem = await criuProblem();
    if (problem) return problem;
    if (usesIoUring(entry.pid)) return 'the process uses io_uring (libuv in Node >= 22 does), which CRIU cannot checkpoint';
    return {
      preDump: async () => {
        if (!(await tracksMemory())) throw new Error('this kernel has no soft-dirty page tracking (criu check --feature mem_dirty_track): no pre-dump');
        const pre = path.join(dir, 'pre');
        rmSync(pre, { recursive: true, force: true });
        mkdirSync(pre, { mode: 0o700 });
        lend(dir, entry.spec);
        try {
          await criu(entry.spec, ['pre-dump', '-t', String(entry.pid), '-D', pre, '-o', 'dump.log', '--track-mem', '--tcp-close', ...externals(entry.pid).args]);
        } catch (error) {
          const reason = logTail(path.join(pre, 'dump.log')) || (error as Error).message;
          rmSync(pre, { recursive: true, force: true });
          throw new Error(`criu pre-dump failed: ${reason}`);
        }
      },
      arm: () =>
        new Promise<CheckpointOutcome>((settle) => {
          entry.armed?.settle({ ok: false, reason: 'armed again' });
          entry.armed = { dir, settle };
        }),
      cancel: () => {
        entry.armed?.settle({ ok: false, reason: 'cancelled' });
        entry.armed = null;
      },
    };
  });

  ctx.hooks.restoreCheckpoint.tap(({ service, id, dir }): true | undefined => {
    const into = incoming(service, id);
    rmSync(into, { recursive: true, force: true });
    mkdirSync(path.dirname(into), { recursive: true, mode: 0o700 });
    chmodSync(path.join(ctx.paths.dataDir, '.migrations'), 0o700);
    renameSync(dir, into);
    return true;
  });

  ctx.hooks.spawn.for('process').tap(
    async (spec: SpawnSpec): Promise<RunningHandle | undefined> => {
      let dir: string;
      try {
        dir = incoming(spec.service, spec.id);
      } catch {
        return undefined;
      }
      if (!existsSync(path.join(dir, 'final', 'meta.json'))) return undefined;
      const taken = `${dir}.restoring`;
      rmSync(taken, { recursive: true, force: true });
      try {
        renameSync(dir, taken);
      } catch {
        return undefined;
      }
      const key = `${spec.service}:${spec.id}`;
      const started = Date.now();
      try {
        const problem = await criuProblem();
        if (problem) throw new Error(problem);
        if (spec.netns) throw new Error('the instance runs in a network namespace here');
        const final = path.join(taken, 'final');
        const meta = readMeta(final);
        if (!meta) throw new Error('the image has no meta.json');
        const expectedUid = imageOwnerUid(meta, spec, ' on this node');
        // The data came as root's files: the tenant's before its process runs again (a cold start's runtime does the
        // same), handed over while CRIU restores (its `chown -R` and stats took 10-130 ms of the pause before it).
        const ready = spec.user ? prepareDataDir(ctx.paths.dataDir, spec.dataDir, spec.user) : undefined;
        ready?.catch(() => undefined);
        const handle = await restoreInstance(spec, final, meta, expectedUid, Math.min(spec.config.startupTimeout / 2, 15_000), ready);
        ctx.log.info({ instance: key, restoreMs: Date.now() - started, pid: handle.pid }, 'restored from migration');
        return handle;
      } catch (error) {
        ctx.log.warn({ instance: key, reason: (error as Error).message }, 'migration restore failed: starting cold');
        return undefined;
      } finally {
        discardLater(taken);
      }
    },
    { stage: -49 },
  );

  // Images hold tenant memory: they go with the instance.
  ctx.instances.watch((event) => {
    if (event.type !== 'removed') return;
    live.delete(keyOf(event.service, event.id));
    try {
      removeImage(incoming(event.service, event.id));
    } catch {
      // A name no image could have been received under.
    }
  });
}
