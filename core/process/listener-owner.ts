import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

/**
 * Inodes of the listening TCP sockets (IPv4 and IPv6) on `port`, from `netDir`/tcp{,6}. `netDir` is
 * /proc/net for Tenement's own network namespace, /proc/PID/net for the namespace process PID is in.
 */
function listeningInodes(port: number, netDir: string): Set<string> | null {
  const inodes = new Set<string>();
  let readable = false;
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of [`${netDir}/tcp`, `${netDir}/tcp6`]) {
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
export function groupOwnsListener(pgid: number, port: number, netDir = '/proc/net'): boolean | null {
  const inodes = listeningInodes(port, netDir);
  if (inodes === null) return null;
  if (inodes.size === 0) return false;
  // Most apps listen in the group leader itself; the scan of every process for the group is the fallback.
  if (holdsSocket(pgid, inodes)) return true;
  return groupMembers(pgid).some((pid) => pid !== pgid && holdsSocket(pid, inodes));
}

/** Whether one of `pids` holds the socket listening on `port`; null when /proc cannot tell. */
export function processesOwnListener(pids: readonly number[], port: number, netDir = '/proc/net'): boolean | null {
  const inodes = listeningInodes(port, netDir);
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

/** SO_ACCEPTCON in /proc/net/unix's Flags column: the socket is listening. */
const ACCEPTING = 0x10000;

/** Inodes of the listening Unix sockets bound to `socketPath`, from `netDir`/unix. */
function listeningUnixInodes(socketPath: string, netDir: string): Set<string> | null {
  let text: string;
  try {
    text = readFileSync(`${netDir}/unix`, 'latin1');
  } catch {
    return null;
  }
  const inodes = new Set<string>();
  for (const line of text.split('\n').slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const fields = line.trim().split(/\s+/);
    if (fields[7] === socketPath && (parseInt(fields[3] ?? '0', 16) & ACCEPTING) !== 0 && fields[6]) inodes.add(fields[6]);
  }
  return inodes;
}

/**
 * Whether the Unix socket listening at `socketPath` is held by one of `pids`: the proxy connects to whatever
 * socket sits at that path, so it must be the instance's own. `netDir` as for TCP (Unix sockets are listed
 * per network namespace). null when /proc cannot tell.
 */
export function processesOwnUnixListener(pids: readonly number[], socketPath: string, netDir = '/proc/net'): boolean | null {
  const inodes = listeningUnixInodes(socketPath, netDir);
  if (inodes === null) return null;
  if (inodes.size === 0) return false;
  return pids.some((pid) => holdsSocket(pid, inodes));
}
