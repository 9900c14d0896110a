import { closeSync, openSync, readFileSync, readSync, readdirSync, readlinkSync } from 'node:fs';

/**
 * Inodes of the TCP sockets listening on `port`, from `file` (`<netDir>/tcp` or `tcp6`; `netDir` is /proc/net
 * for Tenement's own network namespace, /proc/PID/net for the namespace process PID is in).
 */
function listeningInodes(port: number, file: string): Set<string> | null {
  const lines = listenLines(file);
  if (lines === null) return null;
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of lines) {
    const fields = line.trim().split(/\s+/);
    // local_address is ADDR:PORT in hex, st 0A is LISTEN, the inode is the tenth field.
    if (fields[3] === '0A' && fields[1]?.endsWith(`:${hexPort}`) && fields[9]) inodes.add(fields[9]);
  }
  return inodes;
}

/**
 * Whether `holds` finds a socket listening on `port`, IPv4's first: an app found there spares the read of tcp6,
 * which walks the kernel's whole connection table whatever it holds. null when neither file can be read.
 */
function ownsListener(port: number, netDir: string, holds: (inodes: ReadonlySet<string>) => boolean): boolean | null {
  let readable = false;
  for (const file of [`${netDir}/tcp`, `${netDir}/tcp6`]) {
    const inodes = listeningInodes(port, file);
    if (inodes === null) continue;
    readable = true;
    if (inodes.size > 0 && holds(inodes)) return true;
  }
  return readable ? false : null;
}

const READ_BYTES = 16 << 10;

/**
 * The lines of a /proc/net/tcp{,6} file up to its first socket that is not listening, or null when it cannot be
 * read. The kernel lists the listening sockets first (its listening hash, then the established one): reading on
 * past them would make the kernel format every connection and TIME_WAIT entry of the host (4,600 here after a
 * load test: 16-50 ms of CPU per check, paid by every start and restore).
 */
function listenLines(file: string): string[] | null {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return null;
  }
  const lines: string[] = [];
  try {
    const buffer = Buffer.allocUnsafe(READ_BYTES);
    let rest = '';
    let header = true;
    for (;;) {
      const read = readSync(fd, buffer, 0, READ_BYTES, null);
      if (read === 0) break;
      const parts = (rest + buffer.toString('latin1', 0, read)).split('\n');
      rest = parts.pop()!;
      for (const line of parts) {
        if (header) {
          header = false;
          continue;
        }
        if (line.trim().split(/\s+/, 4)[3] !== '0A') return lines;
        lines.push(line);
      }
    }
    if (rest.trim() && !header) lines.push(rest);
    return lines;
  } catch {
    return lines;
  } finally {
    closeSync(fd);
  }
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
  // Most apps listen in the group leader itself; the scan of every process for the group is the fallback.
  return ownsListener(port, netDir, (inodes) => holdsSocket(pgid, inodes) || groupMembers(pgid).some((pid) => pid !== pgid && holdsSocket(pid, inodes)));
}

/** Whether one of `pids` holds the socket listening on `port`; null when /proc cannot tell. */
export function processesOwnListener(pids: readonly number[], port: number, netDir = '/proc/net'): boolean | null {
  return ownsListener(port, netDir, (inodes) => pids.some((pid) => holdsSocket(pid, inodes)));
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
