/** Temp dirs and child processes for the benches, all removed or killed on exit (and on SIGINT or SIGTERM). */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { killOrphans } from '../core/orphans.ts';
import { descendants } from './proc-stats.ts';

const tempDirs = new Set<string>();
const children = new Set<ChildProcess>();
let cleanupInstalled = false;

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) continue;
      // Descendants first: an nginx worker, say, outlives a SIGKILLed master.
      for (const pid of descendants(child.pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      child.kill('SIGKILL');
    }
    for (const dir of tempDirs) {
      // Instances run in their own process groups and outlive a killed `ten serve` or kernel: they are found by
      // the DATA_DIR under our temp dir in their environment.
      killOrphans(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, cleaning up\n`);
      process.exit(130);
    });
  }
}

/** A fresh directory under the OS temp dir, readable by nginx's unprivileged worker, removed at exit. */
export function makeTempDir(prefix: string): string {
  installCleanup();
  const dir = mkdtempSync(path.join(os.tmpdir(), `tenement-bench-${prefix}-`));
  chmodSync(dir, 0o755);
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export interface ManagedChild {
  readonly process: ChildProcess;
  readonly pid: number;
  /** Everything the child wrote to stdout and stderr so far (last 64 KB), for error messages. */
  output(): string;
  /** Resolves when the child has exited. */
  readonly exited: Promise<void>;
  /** Sends `signal`, waits up to `graceMs`, then SIGKILLs. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

export function startChild(command: string, args: readonly string[], options: SpawnOptions = {}): ManagedChild {
  installCleanup();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.add(child);
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-65_536);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    child.once('exit', () => {
      children.delete(child);
      resolve();
    });
    child.once('error', (error) => {
      output += `\nspawn error: ${error.message}`;
      children.delete(child);
      resolve();
    });
  });
  return {
    process: child,
    get pid() {
      return child.pid ?? -1;
    },
    output: () => output,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}
