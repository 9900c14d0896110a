import { spawn, type ChildProcess } from 'node:child_process';
import { LineSplitter } from '../log-buffer.ts';
import { ErrorCodes, TenementError } from '../errors.ts';
import type { ExitInfo, InstanceStats, RunningHandle, SpawnSpec } from '../types.ts';
import { unpinnedWhile } from './affinity.ts';
import { wrapCommand } from './cgroup-wrap.ts';
import { groupOwnsListener, processesOwnUnixListener } from './listener-owner.ts';
import { descendants, processStats, signalGroup, waitGroupGone } from './group.ts';
import { enterNetns } from './netns-enter.ts';

/** What to run for a spawn: the program (the app itself, or a launcher like bwrap that runs it) and its env. */
export interface GroupLaunch {
  program: string;
  args: readonly string[];
  /** The whole environment of the program (nothing is inherited implicitly). */
  env: NodeJS.ProcessEnv;
}

/**
 * How a runtime whose instance is more than one plain process group (a launcher in front of the app) wants it
 * stopped and inspected. Every field defaults to the plain-process behaviour on the group led by the leader.
 */
export interface GroupControl {
  /** Delivers the graceful stop signal (SIGTERM). Default: to the whole group. */
  terminate?(leader: number): void;
  /**
   * Whether the listener on `port` is the instance's; null when it cannot tell. Default: a group member holds it.
   * `netDir` is where the instance's network namespace lists its sockets (/proc/net, or /proc/LEADER/net).
   */
  ownsListener?(leader: number, port: number, netDir: string): boolean | null;
  /** The same for a Unix socket at `socketPath`. Default: the leader or one of its descendants holds it. */
  ownsSocket?(leader: number, socketPath: string, netDir: string): boolean | null;
  /** Memory and CPU of the instance. Default: the leader's. */
  stats?(leader: number): InstanceStats;
}

/**
 * Starts `launch.program` as the leader of a new process group (detached), so a stop can signal every process
 * it started. When the leader ends, whatever is left of its group is killed: a crashed app's children must not
 * keep its port or its data. Shared by the runtimes that run local processes (process, namespace).
 */
export function spawnGroup(spec: SpawnSpec, launch: GroupLaunch, control: GroupControl = {}): Promise<RunningHandle> {
  // Joining cgroups happens here, outside any sandbox the launcher builds: every process below inherits them.
  const joined = spec.cgroupProcs?.length ? wrapCommand(spec.cgroupProcs, launch.program, launch.args) : { command: launch.program, args: launch.args };
  // The network namespace is entered the same way, first (nsenter execs in place: same pid, same group).
  const start = spec.netns ? enterNetns(spec.netns, joined.command, joined.args) : joined;
  const failed = (error: NodeJS.ErrnoException): TenementError => {
    const hint = error.code === 'ENOENT' ? `command not found: ${launch.program} (cwd ${spec.cwd})` : error.message;
    return new TenementError(ErrorCodes.SPAWN_FAILED, `cannot start ${spec.service}:${spec.id}: ${hint}`, { cause: error });
  };
  return new Promise((resolve, reject) => {
    let child: ChildProcess;
    try {
      // With the server's whole CPU mask, not a busy proxy's pin (core/process/affinity.ts).
      child = unpinnedWhile(() =>
        spawn(start.command, start.args, {
          cwd: spec.cwd,
          env: launch.env,
          detached: true,
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
      );
    } catch (error) {
      // Node throws (rather than emits) system errors it does not expect at run time, ENOMEM among them.
      reject(failed(error as NodeJS.ErrnoException));
      return;
    }
    // First, before anything that could throw: at the fd limit Node emits EMFILE on the next tick and leaves
    // stdout and stderr null, and an `error` nobody listens to ends the whole server.
    child.once('error', (error: NodeJS.ErrnoException) => {
      if (child.pid !== undefined) return;
      reject(failed(error));
    });
    if (!child.stdout || !child.stderr) return;
    const stdout = new LineSplitter((line) => spec.onLog('stdout', line));
    const stderr = new LineSplitter((line) => spec.onLog('stderr', line));
    child.stdout.on('data', (chunk: Buffer) => stdout.write(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.write(chunk));

    let exit: ExitInfo | null = null;
    const exitWaiters: Array<(exit: ExitInfo) => void> = [];
    let stopping = false;

    child.once('exit', (code, signal) => {
      exit = { code, signal };
      stdout.end();
      stderr.end();
      // During a graceful stop the rest of the group gets its grace period; otherwise it goes now.
      if (!stopping && child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
      spec.onExit(exit);
      for (const waiter of exitWaiters.splice(0)) waiter(exit);
    });

    child.once('spawn', () => {
      const pid = child.pid!;
      const exited = (): Promise<ExitInfo> =>
        exit ? Promise.resolve(exit) : new Promise((done) => exitWaiters.push(done));

      resolve({
        pid,
        pgid: pid,
        address: spec.socketPath ? { host: spec.host, port: spec.port, socketPath: spec.socketPath } : { host: spec.host, port: spec.port },
        async stop({ graceMs }) {
          stopping = true;
          const deadline = Date.now() + graceMs;
          if (graceMs <= 0) signalGroup(pid, 'SIGKILL');
          else if (control.terminate) control.terminate(pid);
          else signalGroup(pid, 'SIGTERM');
          const leaderGone = await Promise.race([
            exited().then(() => true),
            new Promise<false>((done) => setTimeout(() => done(false), graceMs).unref()),
          ]);
          if (leaderGone) await waitGroupGone(pid, deadline);
          // Whatever ignored SIGTERM, leader or grandchild, is killed; then we wait until the group is empty.
          signalGroup(pid, 'SIGKILL');
          const result = await exited();
          await waitGroupGone(pid, Date.now() + 5_000);
          return result;
        },
        async stats() {
          return control.stats ? control.stats(pid) : processStats(pid);
        },
        async ownsAddress() {
          // Sockets are listed per network namespace: the instance's is the one its leader is in.
          const netDir = spec.netns ? `/proc/${pid}/net` : '/proc/net';
          if (spec.socketPath) {
            return control.ownsSocket
              ? control.ownsSocket(pid, spec.socketPath, netDir)
              : processesOwnUnixListener([pid, ...descendants(pid)], spec.socketPath, netDir);
          }
          return control.ownsListener ? control.ownsListener(pid, spec.port, netDir) : groupOwnsListener(pid, spec.port, netDir);
        },
      });
    });
  });
}
