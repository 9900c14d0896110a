/** /proc readers for the soak's `ten serve` process (bench/soak.ts): descriptors, listening sockets, threads, RSS. */
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

export function threadCount(pid: number): number {
  return Number(/^Threads:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

export function rssOf(pid: number): number {
  return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
}

/** Listening sockets (TCP, and Unix stream listeners) among the process's descriptors. */
export function listenSocketCount(pid: number): number {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let link = '';
    try {
      link = readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      continue;
    }
    const match = /^socket:\[(\d+)\]$/.exec(link);
    if (match) inodes.add(match[1]!);
  }
  let count = 0;
  for (const table of ['tcp', 'tcp6', 'unix']) {
    let text = '';
    try {
      text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // unix: Num RefCount Protocol Flags Type St Inode; flag 00010000 is __SO_ACCEPTCON (listening).
      if (table === 'unix' ? cols[3] === '00010000' && inodes.has(cols[6] ?? '') : cols[3] === '0A' && inodes.has(cols[9] ?? '')) count += 1;
    }
  }
  return count;
}
