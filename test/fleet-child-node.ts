// The second node of a live-move test or bench: a fleet node in a child process of its own mount namespace
// (test/fleet-node-process.ts), its own folder mounted over the data path the first node uses, so both have the
// same DATA_DIR paths on one host. Needs root (unshare -m, mount --bind).
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { ServiceInput } from '../core/config/schema.ts';
import { FLEET_SECRET } from './fleet-harness.ts';

const CHILD = path.join(import.meta.dirname, 'fleet-node-process.ts');

export interface MoveNode {
  id: string;
  url: string;
  /** Where the test reads the node's files (the second node's private folder, mounted over the shared path). */
  files: string;
  close(): Promise<void>;
}

/** The second node: a child in a mount namespace of its own, its `files` mounted over `dataDir` there. */
export async function startChildNode(id: string, servers: string[], services: Record<string, ServiceInput>, dataDir: string, files: string): Promise<MoveNode> {
  const child: ChildProcess = spawn('unshare', ['-m', '--propagation', 'private', process.execPath, '--import', 'tsx', CHILD], {
    env: { ...process.env, FLEET_NODE: JSON.stringify({ id, servers, services, dataDir, privateDir: files, secret: FLEET_SECRET }) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`node ${id} did not start: ${stderr}`)), 60_000);
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.startsWith('{"url"'));
      if (line) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { url: string }).url);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`node ${id} exited with ${code}: ${stderr}`));
    });
  });
  return {
    id,
    url,
    files,
    async close() {
      if (child.exitCode === null) child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

