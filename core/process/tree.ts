import type { InstanceStats } from '../types.ts';
import { descendants, processStats } from './group.ts';
import { processesOwnListener } from './listener-owner.ts';

/**
 * A process and every live descendant: for a runtime whose launcher (bwrap, runsc) stays the leader, the whole
 * of what one instance runs on the host.
 */
export function processTree(leader: number): number[] {
  return [leader, ...descendants(leader)];
}

/** Memory and CPU of a whole process tree, summed: what the instance costs the host, launcher included. */
export function treeStats(leader: number): InstanceStats {
  return processesStats(leader, processTree(leader));
}

/** Memory and CPU of the given processes, summed, reported for `leader` (a tree plus processes outside it). */
export function processesStats(leader: number, pids: readonly number[]): InstanceStats {
  let memoryBytes: number | null = null;
  let cpuSeconds: number | null = null;
  for (const pid of pids) {
    const stats = processStats(pid);
    if (stats.memoryBytes !== null) memoryBytes = (memoryBytes ?? 0) + stats.memoryBytes;
    if (stats.cpuSeconds !== null) cpuSeconds = (cpuSeconds ?? 0) + stats.cpuSeconds;
  }
  return { pid: leader, memoryBytes, cpuSeconds };
}

/** Whether a process of the tree holds the socket listening on `port` (in `netDir`); null when /proc cannot tell. */
export function treeOwnsListener(leader: number, port: number, netDir: string): boolean | null {
  return processesOwnListener(processTree(leader), port, netDir);
}
