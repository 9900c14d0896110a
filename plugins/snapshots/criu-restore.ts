/**
 * The steps every `criu restore` of a suspended instance takes, whatever its tier (restore.ts for the process
 * tier, sandbox-restore.ts for the namespace tier): the post-resume action script, CRIU run as root and not
 * detached (its exit is the instance's once the restore is accepted), the wait for the script's mark, the uid
 * check of a restored process and the limits plugin's cgroups.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { unpinnedWhile } from '../../core/process/affinity.ts';
import { descendants } from '../../core/process/group.ts';
import { LineSplitter } from '../../core/log-buffer.ts';
import type { ExitInfo, SpawnSpec } from '../../core/types.ts';
import { criuPath } from './criu.ts';
import { logTail } from './dump.ts';

const RESUMED = 'resumed';
const SCRIPT = 'on-resume.sh';
/** Marks a gated restore's script waits for at post-restore: go on, or fail the restore. */
const GATE_GO = 'gate-go';
const GATE_FAIL = 'gate-fail';

/**
 * Writes the action script that marks CRIU's post-resume in `dir`; returns its path (for `--action-script`).
 * `gated`: at post-restore (memory and files restored, no task running yet) it waits until `openGate` marks the
 * folder, so work the restored process needs (its DATA_DIR handed to its uid) runs alongside CRIU's instead of
 * before it; a failed gate fails the restore and CRIU kills what it restored (a failed post-restore script aborts
 * the restore; a failed pre-resume one would only be logged, and the tasks resumed). The wait is polled in 2 ms sleeps:
 * the gate is usually open long before CRIU gets there, and a tenant cannot write into `dir` (root's, 0700).
 */
export function writeResumeScript(dir: string, gated = false): string {
  const script = path.join(dir, SCRIPT);
  const mark = (name: string): string => `'${path.join(dir, name)}'`;
  const gate = gated ? `[ "$CRTOOLS_SCRIPT_ACTION" = post-restore ] && while [ ! -e ${mark(GATE_GO)} ]; do [ -e ${mark(GATE_FAIL)} ] && exit 1; sleep 0.002; done\n` : '';
  writeFileSync(script, `#!/bin/sh\n${gate}[ "$CRTOOLS_SCRIPT_ACTION" = post-resume ] && : > ${mark(RESUMED)}\nexit 0\n`, { mode: 0o700 });
  chmodSync(script, 0o700);
  return script;
}

/** Lets a gated restore go on (`ok`) or fail. */
export function openGate(dir: string, ok: boolean): void {
  try {
    writeFileSync(path.join(dir, ok ? GATE_GO : GATE_FAIL), '', { mode: 0o600 });
  } catch {
    // The restore is over (its folder discarded): nobody waits at the gate.
  }
}

/** A running `criu restore`. */
export interface CriuRestore {
  readonly process: ChildProcess;
  /** CRIU's exit, once it ended. */
  exit: ExitInfo | null;
  spawnError: Error | null;
  /** Set once the restore is accepted: from then on CRIU's exit is the instance's (spec.onExit). */
  resumed: boolean;
  exited(): Promise<ExitInfo>;
}

/**
 * Starts `criu restore` with `args`, `fds` handed over as fd 3 on. Its output is the instance's log; when it ends,
 * `onCriuExit` runs (to kill what it restored) before the instance's exit is reported.
 */
export function spawnRestore(spec: SpawnSpec, args: readonly string[], fds: readonly number[], onCriuExit: () => void): CriuRestore {
  const criu = unpinnedWhile(() => spawn(criuPath(), args, { detached: true, stdio: ['ignore', 'pipe', 'pipe', ...fds], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } }));
  const exitWaiters: Array<(exit: ExitInfo) => void> = [];
  const run: CriuRestore = {
    process: criu,
    exit: null,
    spawnError: null,
    resumed: false,
    exited: () => (run.exit ? Promise.resolve(run.exit) : new Promise((done) => exitWaiters.push(done))),
  };
  criu.once('error', (error) => {
    run.spawnError = error;
  });
  const stdout = new LineSplitter((line) => spec.onLog('stdout', line));
  const stderr = new LineSplitter((line) => spec.onLog('stderr', line));
  criu.stdout?.on('data', (chunk: Buffer) => stdout.write(chunk));
  criu.stderr?.on('data', (chunk: Buffer) => stderr.write(chunk));
  criu.once('exit', (code, signal) => {
    const exit = { code, signal };
    run.exit = exit;
    stdout.end();
    stderr.end();
    onCriuExit();
    if (run.resumed) spec.onExit(exit);
    for (const waiter of exitWaiters.splice(0)) waiter(exit);
  });
  return run;
}

/**
 * Waits for the post-resume mark in `dir`, polled every `pauses.first` doubling up to `pauses.max` ms, and woken
 * at once when something is created in `dir` (inotify): the mark is seen when it is made, not at the next poll
 * (up to `pauses.max` later, more on a loaded host whose timers fire late), which a wake and a move's pause paid.
 * The polls stay for CRIU's exit, the deadline and a host out of inotify watches. CRIU failing to start, ending or
 * missing `timeoutMs` runs `onFail` (which kills what it started) and throws why.
 */
export async function waitResumed(run: CriuRestore, dir: string, timeoutMs: number, pauses: { first: number; max: number }, onFail: () => void): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let wake: (() => void) | null = null;
  let watcher: FSWatcher | null = null;
  try {
    watcher = watch(dir, { persistent: false }, () => wake?.());
    watcher.on('error', () => undefined);
  } catch {
    watcher = null;
  }
  try {
    for (let pause = pauses.first; !existsSync(path.join(dir, RESUMED)); pause = Math.min(pauses.max, pause * 2)) {
      if (run.spawnError || run.exit || Date.now() >= deadline) {
        onFail();
        const why = run.spawnError ? String(run.spawnError) : run.exit ? logTail(path.join(dir, 'restore.log')) || `criu exited with ${JSON.stringify(run.exit)}` : `not restored within ${timeoutMs}ms`;
        throw new Error(`criu restore failed: ${why}`);
      }
      await new Promise<void>((done) => {
        const timer = setTimeout(done, pause);
        wake = () => {
          clearTimeout(timer);
          done();
        };
      });
      wake = null;
    }
  } finally {
    watcher?.close();
  }
}

/** The uid a process runs as (real, effective, saved and fs all the same), or null when they differ or it is gone. */
export function uidOf(pid: number): number | null {
  try {
    const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('Uid:'));
    const ids = line?.slice(4).trim().split(/\s+/).map(Number) ?? [];
    return ids.length === 4 && ids.every((id) => id === ids[0]) ? ids[0]! : null;
  } catch {
    return null;
  }
}

/** The limits plugin's cgroups: a restored tree (from `root` down) joins them as a spawned one does. */
export function joinCgroups(spec: SpawnSpec, root: number): void {
  for (const procs of spec.cgroupProcs ?? []) {
    for (const pid of [root, ...descendants(root)]) {
      try {
        writeFileSync(procs, String(pid));
      } catch {
        // A process that ended meanwhile.
      }
    }
  }
}
