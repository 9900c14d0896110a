/**
 * Bringing a suspended namespace-tier instance back: `criu restore` run as root recreates bwrap's init and the
 * app with their pid, mount, user, ipc and uts namespaces. The sandbox's root is a folder rebuilt from the
 * image's layout (`--root`; CRIU does not save a root mount), the host's bind mounts are bound again from their
 * host paths (`--external mnt[]`), the host files the tree held are opened again and handed over
 * (`--inherit-fd fd[N]:file[...]`), and stdout/stderr are CRIU's own, as for the process tier. CRIU stays the
 * parent of the restored init (not detached): its exit is the instance's. The init gets a new host pid (the pid
 * namespace's own pids are kept), read from `--pidfile`.
 */
import { chmodSync, closeSync, lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { descendants, waitGroupGone } from '../../core/process/group.ts';
import { treeOwnsListener, treeStats } from '../../core/process/tree.ts';
import type { ExitInfo, RunningHandle, SpawnSpec } from '../../core/types.ts';
import { joinCgroups, spawnRestore, uidOf, waitResumed, writeResumeScript, type CriuRestore } from './criu-restore.ts';
import type { ImageMeta } from './images.ts';
import { nsPids, openExternal, parsePlan, type RootEntry } from './sandbox-plan.ts';
import { SANDBOX_PLAN } from './sandbox-dump.ts';

const PIDFILE = 'init.pid';

const kill = (pid: number, signal: NodeJS.Signals): void => {
  try {
    process.kill(pid, signal);
  } catch {
    // Gone already.
  }
};

/**
 * Makes the sandbox's root folder at `root` (root's, 0755, mounted read-only inside as bwrap's was). Every
 * parent is checked to be a real folder inside `root`, so no entry is ever made through a link.
 */
export function buildRoot(root: string, entries: readonly RootEntry[]): void {
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { mode: 0o755 });
  chmodSync(root, 0o755);
  const real = realpathSync(root);
  for (const entry of entries) {
    const at = path.join(root, entry.path);
    const parent = path.dirname(at);
    if (!lstatSync(parent).isDirectory() || !`${realpathSync(parent)}/`.startsWith(`${real}/`)) throw new Error(`sandbox.json: ${entry.path} is not under a folder`);
    if (entry.kind === 'dir') mkdirSync(at, { mode: 0o755 });
    else if (entry.kind === 'file') writeFileSync(at, '', { mode: 0o644, flag: 'wx' });
    else symlinkSync(entry.target!, at);
  }
}

/** Why the restored tree is not the instance's own (uid, pid namespace, user namespace map), or null. */
function wrongTree(init: number, expectedUid: number): string | null {
  if (nsPids(init).length < 2 || nsPids(init).at(-1) !== 1) return 'the restored init is not pid 1 of a pid namespace';
  let map: string;
  try {
    map = readFileSync(`/proc/${init}/uid_map`, 'utf8').trim();
  } catch {
    return 'the restored init is gone';
  }
  if (map.split(/\s+/).join(' ') !== `0 ${expectedUid} 1`) return `the restored user namespace maps ${JSON.stringify(map)}, not the instance's uid ${expectedUid} alone`;
  for (const pid of [init, ...descendants(init)]) {
    const uid = uidOf(pid);
    if (uid !== expectedUid) return `a restored process runs as uid ${uid ?? '?'}, not the instance's ${expectedUid}`;
  }
  return null;
}

/**
 * Restores the sandbox image in `dir` for `spec` with its root folder made at `root`; resolves with its handle
 * once it runs again, or throws with CRIU's reason (everything it started killed).
 */
export async function restoreSandbox(spec: SpawnSpec, dir: string, root: string, meta: ImageMeta, expectedUid: number, timeoutMs: number): Promise<RunningHandle> {
  const plan = parsePlan(readFileSync(path.join(dir, SANDBOX_PLAN), 'utf8'));
  buildRoot(root, plan.root);
  // The restored tasks read some images themselves once inside the user namespace, where root's and even the
  // tenant's uid have no override on host files: readable by all for the restore (deleted right after it). The
  // folders above stay root's and 0700: no tenant process can reach them.
  for (const name of readdirSync(dir)) chmodSync(path.join(dir, name), 0o644);
  chmodSync(dir, 0o755);
  const script = writeResumeScript(dir);
  const args = ['restore', '-D', dir, '-o', 'restore.log', '--tcp-close', '--external', 'mnt[]', '--root', root, '--pidfile', path.join(dir, PIDFILE)];
  args.push('--action-script', script, '--inherit-fd', `fd[1]:${meta.stdout}`, '--inherit-fd', `fd[2]:${meta.stderr}`);
  let init: number | null = null;
  // The host files the tree held, opened again (a file changed meanwhile fails CRIU's size and build-id check).
  const fds: number[] = [];
  let run: CriuRestore;
  try {
    for (const [index, file] of plan.files.entries()) {
      fds.push(openExternal(file));
      args.push('--inherit-fd', `fd[${3 + index}]:${file.key}`);
    }
    run = spawnRestore(spec, args, fds, () => {
      if (init !== null) kill(init, 'SIGKILL');
    });
  } finally {
    for (const fd of fds) closeSync(fd);
  }
  const criu = run.process;
  const killAll = (): void => {
    // The init's death ends its pid namespace, every process in it with it.
    if (init !== null) kill(init, 'SIGKILL');
    if (criu.pid !== undefined) kill(-criu.pid, 'SIGKILL');
  };
  await waitResumed(run, dir, timeoutMs, { first: 5, max: 25 }, () => {
    try {
      init = Number(readFileSync(path.join(dir, PIDFILE), 'utf8').trim()) || null;
    } catch {
      // CRIU never got as far as the pid file.
    }
    killAll();
  });
  init = Number(readFileSync(path.join(dir, PIDFILE), 'utf8').trim());
  // Whatever the image says, the tree must be the instance's own: its uid alone, in a pid namespace of its own.
  const wrong = Number.isInteger(init) && init > 1 && descendants(criu.pid!).includes(init) ? wrongTree(init, expectedUid) : 'the restored init is not CRIU\'s child';
  if (wrong) {
    killAll();
    throw new Error(`${wrong}: killed`);
  }
  run.resumed = true;
  if (run.exit) {
    spec.onExit(run.exit);
    throw new Error('the restored sandbox ended at once');
  }
  const sandboxInit = init;
  joinCgroups(spec, sandboxInit);
  const leader = criu.pid!;
  const exited = (): Promise<ExitInfo> => run.exited();
  return {
    pid: leader,
    pgid: leader,
    keepsOwnPort: true,
    address: { host: meta.host, port: meta.port },
    async stop({ graceMs }) {
      // As for a spawned sandbox: SIGTERM for the app, not for bwrap's init (its death would SIGKILL the app).
      const apps = descendants(sandboxInit);
      if (graceMs <= 0 || apps.length === 0) kill(sandboxInit, 'SIGKILL');
      else for (const pid of apps) kill(pid, 'SIGTERM');
      await Promise.race([exited(), new Promise((done) => setTimeout(done, Math.max(0, graceMs)).unref())]);
      killAll();
      const result = await exited();
      await waitGroupGone(leader, Date.now() + 5_000);
      return result;
    },
    async stats() {
      return treeStats(leader);
    },
    async ownsAddress() {
      return treeOwnsListener(leader, meta.port, '/proc/net');
    },
  };
}
