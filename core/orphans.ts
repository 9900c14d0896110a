import { readFileSync, readdirSync } from 'node:fs';

export interface OrphanProcess {
  pid: number;
  pgid: number;
  service: string;
  id: string;
}

function readEnviron(pid: number): Map<string, string> | null {
  try {
    const raw = readFileSync(`/proc/${pid}/environ`, 'latin1');
    const env = new Map<string, string>();
    for (const entry of raw.split('\0')) {
      const eq = entry.indexOf('=');
      if (eq > 0) env.set(entry.slice(0, eq), entry.slice(eq + 1));
    }
    return env;
  } catch {
    return null;
  }
}

function readPgid(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // Fields after the parenthesised command name: state ppid pgrp ...
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[2]);
  } catch {
    return null;
  }
}

/**
 * Processes left by an earlier run of Tenement on the same data directory. They are recognised by the
 * environment every tenant inherits (TENEMENT_SERVICE, TENEMENT_INSTANCE and a DATA_DIR under
 * `{dataDir}/instances/`), which survives pid reuse and catches grandchildren that left the process group.
 */
export function findOrphans(instancesRoot: string): OrphanProcess[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const prefix = instancesRoot.endsWith('/') ? instancesRoot : `${instancesRoot}/`;
  const orphans: OrphanProcess[] = [];
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const env = readEnviron(pid);
    const service = env?.get('TENEMENT_SERVICE');
    const id = env?.get('TENEMENT_INSTANCE');
    if (!env || !service || !id || !env.get('DATA_DIR')?.startsWith(prefix)) continue;
    const pgid = readPgid(pid);
    if (pgid !== null) orphans.push({ pid, pgid, service, id });
  }
  return orphans;
}

/** SIGKILLs each orphan's process group and the process itself; returns how many were found. */
export function killOrphans(instancesRoot: string): OrphanProcess[] {
  const orphans = findOrphans(instancesRoot);
  const groups = new Set(orphans.map((o) => o.pgid));
  for (const pgid of groups) {
    if (pgid > 1 && pgid !== process.pid) signalQuietly(-pgid, 'SIGKILL');
  }
  for (const orphan of orphans) signalQuietly(orphan.pid, 'SIGKILL');
  return orphans;
}

export function signalQuietly(pid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
