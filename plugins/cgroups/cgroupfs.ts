import { readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * Plain cgroupfs file operations, the same for v1 and v2. cgroupfs files report size 0, so they are always read
 * in full rather than judged by their size.
 */

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function readText(file: string): string | null {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

export function writeText(file: string, value: string): void {
  writeFileSync(file, value);
}

/** A number file (memory.usage_in_bytes, cpuacct.usage), or null when it cannot be read. */
export function readNumber(file: string): number | null {
  const text = readText(file);
  if (text === null) return null;
  const value = Number(text.trim());
  return Number.isFinite(value) ? value : null;
}

/** One `key value` line of a flat-keyed file (memory.oom_control, memory.events, cpu.stat). */
export function readKey(file: string, key: string): number | null {
  const text = readText(file);
  if (text === null) return null;
  for (const line of text.split('\n')) {
    const [name, value] = line.trim().split(/\s+/);
    if (name === key && value !== undefined) return Number(value);
  }
  return null;
}

export function readPids(dir: string): number[] {
  const text = readText(path.join(dir, 'cgroup.procs'));
  if (!text) return [];
  return text
    .split('\n')
    .map((line) => Number(line.trim()))
    .filter((pid) => Number.isInteger(pid) && pid > 0);
}

/**
 * SIGKILLs every process of the cgroup until cgroup.procs reads empty. A loop, because a process may fork
 * between the read and the kill; every child lands in the same cgroup, so the loop catches it on the next pass.
 */
export async function emptyCgroup(dir: string, timeoutMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  // v2 (5.14+) kills the whole cgroup in one write, forks included.
  try {
    writeText(path.join(dir, 'cgroup.kill'), '1');
  } catch {
    // v1, or an older v2: the loop below does it.
  }
  for (let pause = 2; ; pause = Math.min(50, pause * 2)) {
    const pids = readPids(dir);
    if (pids.length === 0) return true;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    if (Date.now() >= deadline) return false;
    await sleep(pause);
  }
}

/** rmdir, retried while the kernel still counts exiting tasks (EBUSY). True once the directory is gone. */
export async function removeDir(dir: string, timeoutMs = 3_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (let pause = 5; ; pause = Math.min(100, pause * 2)) {
    try {
      rmdirSync(dir);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      if (code !== 'EBUSY' || Date.now() >= deadline) return false;
    }
    await sleep(pause);
  }
}

/** Child cgroups of a directory (a cgroup's subdirectories are its child cgroups; files are its knobs). */
export function childCgroups(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => path.join(dir, entry.name));
  } catch {
    return [];
  }
}

/** Kills every process in a cgroup subtree and removes it, deepest first. Returns the directories left behind. */
export async function removeTree(dir: string): Promise<string[]> {
  const left: string[] = [];
  for (const child of childCgroups(dir)) left.push(...(await removeTree(child)));
  await emptyCgroup(dir);
  if (!(await removeDir(dir))) left.push(dir);
  return left;
}
