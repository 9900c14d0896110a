import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/** Inodes of the listening TCP sockets (IPv4 and IPv6) on `port`, from /proc/net/tcp{,6}. */
function listeningInodes(port: number): Set<string> | null {
  const inodes = new Set<string>();
  let readable = false;
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'latin1');
      readable = true;
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // local_address is ADDR:PORT in hex, st 0A is LISTEN, the inode is the tenth field.
      if (fields[3] === '0A' && fields[1]?.endsWith(`:${hexPort}`) && fields[9]) inodes.add(fields[9]);
    }
  }
  return readable ? inodes : null;
}

function groupMembers(pgid: number): number[] {
  const members: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const code = entry.charCodeAt(0);
    if (code < 48 || code > 57) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ', 3);
      if (Number(fields[2]) === pgid) members.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return members;
}

/**
 * Whether the socket listening on `port` belongs to a process of the group. A health check only proves that
 * something answers on the port; between the port probe and the app's own bind, another program may have
 * taken it, and the tenant's traffic would go to a stranger. null when /proc cannot tell (not Linux).
 */
export function groupOwnsListener(pgid: number, port: number): boolean | null {
  const inodes = listeningInodes(port);
  if (inodes === null) return null;
  if (inodes.size === 0) return false;
  // Most apps listen in the group leader itself; the scan of every process for the group is the fallback.
  if (holdsSocket(pgid, inodes)) return true;
  return groupMembers(pgid).some((pid) => pid !== pgid && holdsSocket(pid, inodes));
}

/** Whether one of `pids` holds the socket listening on `port`; null when /proc cannot tell. */
export function processesOwnListener(pids: readonly number[], port: number): boolean | null {
  const inodes = listeningInodes(port);
  if (inodes === null) return null;
  if (inodes.size === 0) return false;
  return pids.some((pid) => holdsSocket(pid, inodes));
}

function holdsSocket(pid: number, inodes: ReadonlySet<string>): boolean {
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return false;
  }
  for (const fd of fds) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (target.startsWith('socket:[') && inodes.has(target.slice(8, -1))) return true;
    } catch {
      // Closed while we looked.
    }
  }
  return false;
}
