// `ten serve` as a real child process for the security tests that must see the whole server survive (or not).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findOrphans, signalQuietly } from '../../core/orphans.ts';
import { ROOT, waitFor } from '../helpers.ts';

export interface ServeChild {
  child: ChildProcess;
  pid: number;
  url: string;
  dir: string;
  dataDir: string;
  output: () => string;
  exited: () => boolean;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after a bound; kills whatever instance process is left; removes the folder. */
  stop(): Promise<void>;
}

export { freePort } from '../helpers.ts';

/** A fresh project folder, readable by tenants' uids when the tests run as root. */
export function projectDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/** Starts `node bin/ten.mjs serve --config <file>` and resolves once it is serving. */
export async function startServe(dir: string, configFile: string, port: number, env: NodeJS.ProcessEnv = {}): Promise<ServeChild> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, TENEMENT_LOG_LEVEL: 'info', ...env };
  delete childEnv.NODE_TEST_CONTEXT;
  delete childEnv.TENEMENT_CONFIG;
  delete childEnv.TENEMENT_DATA_DIR;
  const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'ten.mjs'), 'serve', '--config', configFile], {
    cwd: dir,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4_000_000)));
  child.stderr!.on('data', (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-4_000_000)));
  let exited = false;
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = true;
      resolve({ code, signal });
    }),
  );
  const dataDir = path.join(dir, 'data');
  const stop = async (): Promise<void> => {
    if (!exited) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exit;
      clearTimeout(timer);
    }
    for (const p of findOrphans(path.join(dataDir, 'instances'))) {
      signalQuietly(-p.pgid, 'SIGKILL');
      signalQuietly(p.pid, 'SIGKILL');
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(() => exited || output.includes('tenement serving'), 'ten serve to start serving', 60_000);
    assert.ok(!exited, `ten serve exited during start-up:\n${output}`);
  } catch (error) {
    await stop();
    throw error;
  }
  return { child, pid: child.pid!, url: `http://127.0.0.1:${port}`, dir, dataDir, output: () => output, exited: () => exited, exit, stop };
}

export function writeJsonConfig(dir: string, config: unknown): string {
  const file = path.join(dir, 'tenement.config.json');
  writeFileSync(file, JSON.stringify(config, null, 2));
  return file;
}

/** The admin token `ten serve` wrote to its data directory. */
export function adminToken(dataDir: string): string {
  return readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
}
