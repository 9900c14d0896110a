// `ten` as a user runs it, for end-to-end tests: `ten <args>` child processes and a `ten serve` child, each with a
// clean environment (no TENEMENT_* of the runner) and, when asked, a HOME of its own (the context file lives there).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request, ROOT, waitFor } from './helpers.ts';

export const TEN = path.join(ROOT, 'bin', 'ten.mjs');

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment of a user without any TENEMENT_* variables set (the test runner's own must not leak in). */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('TENEMENT_') && key !== 'NO_COLOR' && key !== 'XDG_CONFIG_HOME') env[key] = value;
  }
  return { ...env, ...extra };
}

export function ten(args: string[], cwd: string, env: Record<string, string> = {}, timeoutMs = 120_000): Promise<Result> {
  return new Promise((resolve) => {
    execFile(process.execPath, [TEN, ...args], { cwd, timeout: timeoutMs, env: cleanEnv(env) }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** 0755, like a project folder: run as root, tenants run as their own uid and must reach the data dir inside. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/** Pids of live processes whose DATA_DIR is inside `dataDir`: the instances of one server. */
export function instancePids(dataDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0');
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const zombie = stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
      if (!zombie && environ.some((line) => line.startsWith(`DATA_DIR=${dataDir}${path.sep}`))) pids.push(Number(entry));
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return pids;
}

export interface ServeProcess {
  child: ChildProcess;
  /** The tail of its stderr (its JSON log), for failure messages and log assertions. */
  log(): string;
  /** SIGTERM, then SIGKILL after 30 s; resolves when it exited and its instances are gone. */
  stop(): Promise<void>;
}

// Servers a test left running (a cleanup that never ran) are killed with their instances when the test file's
// process exits, so a leaked server can neither keep that process alive nor outlive the suite.
const running = new Map<ChildProcess, string>();
process.once('exit', () => {
  for (const [child, dataDir] of running) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    for (const pid of instancePids(dataDir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});

/** SIGTERM, then SIGKILL after 30 s if it has not exited; resolves once it has (at once if it already had). */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  await exited;
  clearTimeout(timer);
}

/** Stops a `ten serve` child (stopChild), then waits for its instances in `dataDir` to be gone, killing what is left. */
export async function stopServeChild(child: ChildProcess, dataDir: string): Promise<void> {
  await stopChild(child);
  try {
    await waitFor(() => instancePids(dataDir).length === 0, 'the instances of ten serve to be gone', 15_000);
  } finally {
    for (const pid of instancePids(dataDir)) process.kill(pid, 'SIGKILL');
  }
}

/** `ten serve --config file` until it answers /health at `url`. */
export async function startServe(configFile: string, url: string, dataDir: string, env: Record<string, string> = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, [TEN, 'serve', '--config', configFile], {
    cwd: path.dirname(configFile),
    env: cleanEnv(env),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  running.set(child, dataDir);
  child.once('exit', () => running.delete(child));
  let log = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString('utf8')).slice(-200_000);
  });
  const stop = (): Promise<void> => stopServeChild(child, dataDir);
  try {
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`ten serve exited ${child.exitCode}: ${log}`);
        return request(url, '127.0.0.1', '/health', { timeoutMs: 2000 }).then(
          (reply) => reply.status === 200,
          () => false,
        );
      },
      'ten serve to answer /health',
      60_000,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { child, log: () => log, stop };
}
