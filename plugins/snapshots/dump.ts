/**
 * Saving a running instance with CRIU. The dump runs as the instance's own uid (`--unprivileged`, with the
 * capabilities CRIU needs as ambient ones): root here lacks CAP_SYS_RESOURCE, and reading another uid's rlimits
 * needs it, so a root CRIU cannot dump a tenant. The dump stops and kills the process; the caller then reaps it.
 */
import { execFile } from 'node:child_process';
import { readFileSync, readlinkSync, rmSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { findSetpriv } from '../../core/process/tenant-launch.ts';
import { criuPath } from './criu.ts';
import { frozenStep } from './frozen.ts';
import { seal, writeMeta, type ImageMeta } from './images.ts';

const run = promisify(execFile);
/** CRIU and its action scripts run as the tenant's uid: they get a PATH, not Tenement's environment. */
const CRIU_ENV = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' };
const DUMP_CAPS = '+checkpoint_restore,+sys_ptrace,+dac_override,+sys_admin,+net_admin';

export interface DumpTarget {
  service: string;
  id: string;
  pid: number;
  host: string;
  port: number;
  user: { uid: number; gid: number } | null;
}

/** The step run while frozen failed: its reason, not CRIU's log (which only says the action script failed). */
class FrozenStepError extends Error {}

/** The last lines of a CRIU log worth reading (its RLIMIT_NOFILE complaint is on every run and harmless). */
export function logTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').split('\n').filter((line) => line.includes('Error') && !line.includes('RLIMIT_NOFILE')).slice(-3).join(' ').trim();
  } catch {
    return '';
  }
}

/**
 * Dumps `target` into `dir` (made here; removed on failure). Throws with CRIU's reason. With `whileFrozen` the
 * process is left running (`--leave-running`) and `whileFrozen` runs at CRIU's `post-dump` action: after the
 * images are written, before CRIU thaws the tree (named snapshots copy DATA_DIR there: frozen.ts).
 */
export async function dumpInstance(target: DumpTarget, dir: string, whileFrozen?: (dir: string) => Promise<void>): Promise<ImageMeta> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { mode: 0o700 });
  const stdout = readlinkSync(`/proc/${target.pid}/fd/1`);
  const stderr = readlinkSync(`/proc/${target.pid}/fd/2`);
  // The output sockets' other ends are Tenement's: external to the image, handed anew on restore.
  const external = [stdout, stderr].flatMap((link) => {
    const socket = /^socket:\[(\d+)\]$/.exec(link);
    return socket ? ['--external', `unix[${socket[1]}]`] : [];
  });
  // CRIU 4.2 cannot checkpoint io_uring rings, which libuv opens in Node 22 and later: say so instead of CRIU's
  // "Can't open mapfile link" (the instance is then stopped, as mode 'stop' would).
  if (usesIoUring(target.pid)) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error('criu dump failed: the process uses io_uring (libuv in Node >= 22 does), which CRIU cannot checkpoint');
  }
  const frozen = whileFrozen ? frozenStep(dir, whileFrozen) : null;
  // Connections are saved closed (`--tcp-close`), as a stop would close them. By the time an image is restored
  // their other ends are long gone (idle pooled connections of the proxy, which opens new ones), and saving them
  // established makes CRIU lock each one with an iptables DROP rule that only a restore of that image removes: an
  // image deleted instead (a cold start, the instance removed) left its rules for good (130 on a test host), each
  // one read by every packet, and one dropping a later connection that happens to reuse its ports.
  const args = ['dump', '-t', String(target.pid), '-D', dir, '-o', 'dump.log', '--tcp-close', ...external];
  if (frozen) args.push('--leave-running', '--action-script', frozen.script);
  const started = Date.now();
  try {
    let dumped: Promise<unknown>;
    if (target.user && target.user.uid !== 0) {
      const { uid, gid } = target.user;
      const setpriv = findSetpriv('process');
      dumped = run(setpriv, [`--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', `--inh-caps=${DUMP_CAPS}`, `--ambient-caps=${DUMP_CAPS}`, criuPath(), ...args, '--unprivileged'], { timeout: 60_000, env: CRIU_ENV });
    } else {
      dumped = run(criuPath(), args, { timeout: 60_000, env: CRIU_ENV });
    }
    let ran = true;
    if (frozen) {
      try {
        ran = await frozen.run(dumped);
      } catch (error) {
        throw new FrozenStepError((error as Error).message);
      }
    }
    await dumped;
    if (!ran) throw new FrozenStepError('criu dump ended without running its post-dump action');
    frozen?.clean();
  } catch (error) {
    const reason = error instanceof FrozenStepError ? error.message : logTail(path.join(dir, 'dump.log')) || (error as Error).message;
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`criu dump failed: ${reason}`);
  }
  const dumpMs = Date.now() - started;
  const bytes = seal(dir);
  const user = target.user ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
  const meta: ImageMeta = { service: target.service, id: target.id, uid: user.uid, gid: user.gid, pid: target.pid, host: target.host, port: target.port, stdout, stderr, dumpMs, bytes, at: Date.now() };
  writeMeta(dir, meta);
  return meta;
}

/** Whether the process maps an io_uring ring (its memory map names the ring's anonymous inode). */
export function usesIoUring(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/maps`, 'utf8').includes('anon_inode:[io_uring]');
  } catch {
    return false;
  }
}
