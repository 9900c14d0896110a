import { existsSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * Removes per-run folders (`{guestDir}/run/*`) that no live QEMU names on its command line: left by a server
 * that crashed. Folders of running VMs (of this or another server sharing the guest folder) are kept, and so
 * are folders younger than a minute (another server may be about to start their QEMU).
 */
export function removeStaleRunDirs(guestDir: string): string[] {
  const runRoot = path.join(guestDir, 'run');
  if (!existsSync(runRoot)) return [];
  const cmdlines: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'latin1');
      if (cmdline.includes('qemu-system')) cmdlines.push(cmdline);
    } catch {
      // Gone.
    }
  }
  const removed: string[] = [];
  for (const entry of readdirSync(runRoot)) {
    const dir = path.join(runRoot, entry);
    if (cmdlines.some((cmdline) => cmdline.includes(`${dir}/`))) continue;
    try {
      if (Date.now() - statSync(dir).mtimeMs < 60_000) continue;
    } catch {
      continue;
    }
    rmSync(dir, { recursive: true, force: true });
    removed.push(dir);
  }
  return removed;
}
