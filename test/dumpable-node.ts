import { execFileSync, spawnSync } from 'node:child_process';

/**
 * A Node for a tenant app that CRIU can checkpoint: libuv in Node >= 22 maps io_uring rings, which CRIU 4.2
 * cannot dump (suspend then stops the instance, logged: docs/snapshots.md). CI runs the suite on Node 24 too,
 * where this picks the machine's Node 20 on PATH. Null when every node maps rings.
 */
export function dumpableNode(): string | null {
  const candidates = [process.execPath, ...execFileSync('which', ['-a', 'node'], { encoding: 'utf8' }).split('\n').filter(Boolean)];
  for (const node of new Set(candidates)) {
    const probe = spawnSync(node, ['-e', "process.stdout.write(String(require('fs').readFileSync('/proc/self/maps', 'utf8').includes('anon_inode:[io_uring]')))"], { encoding: 'utf8' });
    if (probe.status === 0 && probe.stdout === 'false') return node;
  }
  return null;
}

/** The skip reason when no node is dumpable. */
export const NO_DUMPABLE_NODE = 'every node on PATH maps io_uring rings (Node >= 22), which CRIU 4.2 cannot checkpoint; this test needs a Node 20 on PATH';
