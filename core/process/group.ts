import { readFileSync, readdirSync } from 'node:fs';
import type { InstanceStats } from '../types.ts';

export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * True while a process of the group is alive. kill(-pgid, 0) also counts zombies, which an init that reaps
 * slowly (about once a second on these machines; never, when Tenement itself is PID 1 in a container) leaves
 * behind; a zombie holds no port and no file, so the group is scanned and zombies are not counted.
 */
export function groupAlive(pgid: number): boolean {
  if (!signalGroup(pgid, 0)) return false;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    const code = entry.charCodeAt(0);
    if (code < 48 || code > 57) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue;
    }
    // Fields after the parenthesised command name: state ppid pgrp ...
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ', 3);
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') return true;
  }
  return false;
}

/** Resolves true once no process of the group is left, false at the deadline. */
export async function waitGroupGone(pgid: number, deadline: number): Promise<boolean> {
  for (let pause = 5; groupAlive(pgid); pause = Math.min(50, pause * 2)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
  return true;
}

/** The pids of every live descendant of `root` (children, grandchildren, ...), from the ppid in /proc. */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    const code = entry.charCodeAt(0);
    if (code < 48 || code > 57) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ', 2);
      if (fields[0] === 'Z') continue;
      const ppid = Number(fields[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(entry));
      children.set(ppid, list);
    } catch {
      // The process ended while we looked.
    }
  }
  const found: number[] = [];
  const queue = [...(children.get(root) ?? [])];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    found.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return found;
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
