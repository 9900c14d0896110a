/** What /proc says about a process: its RSS, its CPU time (all threads or one), its children and their command lines. */
import { readFileSync, readdirSync } from 'node:fs';

/** Resident set size of a process from /proc, in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

/** Linux USER_HZ: /proc/<pid>/stat counts CPU time in these ticks. */
const CLOCK_TICKS_PER_SEC = 100;

/** User + system CPU time a process has used so far (all its threads), in microseconds; 0 once it is gone. */
export function cpuMicros(pid: number): number {
  return statCpuMicros(`/proc/${pid}/stat`) ?? 0;
}

export const cpuMicrosOf = (pids: readonly number[]): number => pids.reduce((sum, pid) => sum + cpuMicros(pid), 0);

/** CPU time of a process's main thread alone (its JavaScript event loop; worker threads excluded), in microseconds. */
export const mainThreadCpuMicros = (pid: number): number => statCpuMicros(`/proc/${pid}/task/${pid}/stat`) ?? 0;

/** CPU time used so far by each thread of this process (its /proc/self/task/<tid>/stat), in microseconds. */
export function threadCpuMicros(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const micros = statCpuMicros(`/proc/self/task/${tid}/stat`);
    if (micros !== null) out.set(Number(tid), micros); // null: the thread ended meanwhile
  }
  return out;
}

/** utime + stime of a /proc `stat` file (a process's, or one thread's), in microseconds; null when it is gone. */
function statCpuMicros(file: string): number | null {
  try {
    const stat = readFileSync(file, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / CLOCK_TICKS_PER_SEC;
  } catch {
    return null;
  }
}

/** Every descendant of a process, deepest last. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  for (let queue = [pid]; queue.length > 0; ) {
    const children = childPids(queue.shift()!);
    out.push(...children);
    queue.push(...children);
  }
  return out;
}

/** Direct children of a process, found through /proc (no CONFIG_PROC_CHILDREN needed). */
export function childPids(parent: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) found.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** `parent`'s children with their command lines (NUL-separated, as /proc has them); one gone meanwhile is left out. */
export function childCommandLines(parent: number): Array<{ pid: number; cmdline: string }> {
  const children: Array<{ pid: number; cmdline: string }> = [];
  for (const pid of childPids(parent)) {
    try {
      children.push({ pid, cmdline: readFileSync(`/proc/${pid}/cmdline`, 'latin1') });
    } catch {
      // gone meanwhile
    }
  }
  return children;
}
