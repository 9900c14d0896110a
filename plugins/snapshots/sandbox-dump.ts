/**
 * Saving a namespace-tier instance (bwrap) with CRIU: the tree from bwrap's init (pid 1 of the sandbox's pid
 * namespace) down, with its pid, mount, user, ipc and uts namespaces. What it takes, found by measurement
 * (docs/snapshots.md, "The namespace tier"):
 * - the user namespace maps uid 0 (CRIU refuses one that does not: "Unable to convert uid or gid"): a suspending
 *   service's sandbox maps the tenant's uid to 0 inside (SpawnSpec.rootInUserns);
 * - CRIU runs as the tenant's uid, which owns that user namespace, with the capabilities it needs as ambient ones
 *   (root lacks CAP_SYS_RESOURCE here: "Can't get rlimit"), setuid/setgid to enter the namespace as its uid 0 and
 *   sys_chroot to enter its mount namespace;
 * - the host's bind mounts (/usr, /etc, the app folder, DATA_DIR, /dev nodes) are external (`--external mnt[]`),
 *   the tmpfs mounts (/tmp, /dev) are saved with their content, and the files held from outside the sandbox are
 *   external files (sandbox-plan.ts).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { descendants } from '../../core/process/group.ts';
import { findSetpriv } from '../../core/process/tenant-launch.ts';
import { criuPath } from './criu.ts';
import { logTail, usesIoUring, type DumpTarget } from './dump.ts';
import { seal, writeMeta, type ImageMeta } from './images.ts';
import { sandboxPlan } from './sandbox-plan.ts';

const run = promisify(execFile);
const CAPS = '+checkpoint_restore,+sys_ptrace,+dac_override,+sys_admin,+net_admin,+setuid,+setgid,+sys_chroot';
export const SANDBOX_PLAN = 'sandbox.json';

/** Dumps the sandbox whose init is `target.pid` into `dir` (made here; removed on failure). Throws with the reason. */
export async function dumpSandbox(target: DumpTarget, dir: string): Promise<ImageMeta> {
  if (!target.user || target.user.uid === 0) throw new Error('criu dump failed: a namespace-tier instance is saved as its own uid, which needs Tenement to run as root');
  const init = target.pid;
  const tree = [init, ...descendants(init)];
  if (tree.some(usesIoUring)) throw new Error('criu dump failed: the process uses io_uring (libuv in Node >= 22 does), which CRIU cannot checkpoint');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  const stdout = readlinkSync(`/proc/${init}/fd/1`);
  const stderr = readlinkSync(`/proc/${init}/fd/2`);
  const args = ['dump', '-t', String(init), '-D', dir, '-o', 'dump.log', '--tcp-close', '--external', 'mnt[]', '--unprivileged'];
  // stdout and stderr (bwrap's and the app's) are socket pairs to Tenement: external, handed anew on restore.
  for (const link of new Set([stdout, stderr])) {
    const socket = /^socket:\[(\d+)\]$/.exec(link);
    if (socket) args.push('--external', `unix[${socket[1]}]`);
  }
  const started = Date.now();
  try {
    const plan = sandboxPlan(init);
    for (const file of plan.files) args.push('--external', file.key);
    const { uid, gid } = target.user;
    await run(findSetpriv('namespace'), [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', `--inh-caps=${CAPS}`, `--ambient-caps=${CAPS}`, criuPath(), ...args], { timeout: 60_000 });
    writeFileSync(path.join(dir, SANDBOX_PLAN), JSON.stringify(plan), { mode: 0o600 });
  } catch (error) {
    const reason = logTail(path.join(dir, 'dump.log')) || (error as Error).message;
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`criu dump failed: ${reason}`);
  }
  const dumpMs = Date.now() - started;
  const bytes = seal(dir);
  const meta: ImageMeta = { service: target.service, id: target.id, uid: target.user.uid, gid: target.user.gid, pid: init, host: target.host, port: target.port, stdout, stderr, dumpMs, bytes, at: Date.now() };
  writeMeta(dir, meta);
  return meta;
}
