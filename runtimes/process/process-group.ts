import { readFileSync } from 'node:fs';
import type { InstanceStats } from '../../core/types.ts';

export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

export const groupAlive = (pgid: number): boolean => signalGroup(pgid, 0);

/** Resolves true once no process of the group is left, false at the deadline. */
export async function waitGroupGone(pgid: number, deadline: number): Promise<boolean> {
  for (let pause = 5; groupAlive(pgid); pause = Math.min(50, pause * 2)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
  return true;
}

const CLOCK_TICKS = 100;
const PAGE_SIZE = 4096;

/** Memory and CPU of one process from /proc (Linux); nulls elsewhere. */
export function processStats(pid: number): InstanceStats {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    const cpuSeconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
    const statm = readFileSync(`/proc/${pid}/statm`, 'latin1').split(' ');
    return { pid, memoryBytes: Number(statm[1]) * PAGE_SIZE, cpuSeconds };
  } catch {
    return { pid, memoryBytes: null, cpuSeconds: null };
  }
}
