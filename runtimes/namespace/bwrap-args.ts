import { lstatSync, readlinkSync } from 'node:fs';
import path from 'node:path';

export interface SandboxLayout {
  /** Absolute path of the program to run inside (resolved on the tenant PATH). */
  program: string;
  args: readonly string[];
  cwd: string;
  /** Tenement's data directory: hidden inside, except for the instance's own DATA_DIR. */
  dataRoot: string;
  dataDir: string;
  hostname: string;
  /** Host folders outside the base layout the program needs (a node installed under /opt), read-only. */
  extraReadOnly: readonly string[];
  /** Set when Tenement is root: the uid/gid the tenant has inside (and, through setpriv, outside). */
  user: { uid: number; gid: number } | null;
  /** The tenant is uid 0 of its user namespace, still mapped to its own host uid (SpawnSpec.rootInUserns). */
  rootInUserns?: boolean | undefined;
  /** A file shown as /etc/resolv.conf, read-only (SpawnSpec.resolvConf: service discovery's resolver). */
  resolvConf?: string | undefined;
}

/** Debian has a merged /usr: these are symlinks into it. Elsewhere they are folders, bound read-only. */
const ROOT_LINKS = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

const inside = (child: string, parent: string): boolean => child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);

/**
 * The bwrap command line: fresh pid, ipc, uts, cgroup and user namespaces; the host network (HOST stays
 * 127.0.0.1); a read-only view of /usr, /etc and the app's cwd; private /proc, /dev and /tmp; Tenement's data
 * dir hidden under a tmpfs, with the instance's DATA_DIR bound back writable at the same path (so DATA_DIR
 * stays valid); and / itself read-only. Nothing else of the host (home folders, /var, /run) is visible.
 */
export function bwrapArgs(layout: SandboxLayout): string[] {
  const args = ['--unshare-user', '--unshare-pid', '--unshare-ipc', '--unshare-uts', '--unshare-cgroup-try', '--share-net'];
  args.push('--die-with-parent', '--new-session');
  // bwrap maps one uid, the one it runs as, to --uid: with 0 it stays the tenant's host uid, capabilities still dropped.
  if (layout.rootInUserns) args.push('--uid', '0', '--gid', '0');
  else if (layout.user) args.push('--uid', String(layout.user.uid), '--gid', String(layout.user.gid));
  args.push('--ro-bind', '/usr', '/usr');
  for (const link of ROOT_LINKS) {
    try {
      const info = lstatSync(link);
      if (info.isSymbolicLink()) args.push('--symlink', readlinkSync(link), link);
      else if (info.isDirectory()) args.push('--ro-bind', link, link);
    } catch {
      // Not on this host.
    }
  }
  args.push('--ro-bind', '/etc', '/etc');
  if (layout.resolvConf) args.push('--ro-bind', layout.resolvConf, resolvConfPath());
  for (const dir of layout.extraReadOnly) args.push('--ro-bind', dir, dir);
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp');

  // The cwd usually holds the data dir (./tenement-data): bind it first, then hide the data dir over it.
  const cwdInData = inside(layout.cwd, layout.dataRoot);
  if (!cwdInData) args.push('--ro-bind', layout.cwd, layout.cwd);
  args.push('--tmpfs', layout.dataRoot);
  if (cwdInData && !inside(layout.cwd, layout.dataDir) && layout.cwd !== layout.dataRoot) {
    args.push('--ro-bind', layout.cwd, layout.cwd);
  }
  args.push('--bind', layout.dataDir, layout.dataDir);
  args.push('--remount-ro', layout.dataRoot);
  args.push('--hostname', layout.hostname, '--chdir', layout.cwd, '--remount-ro', '/');
  args.push('--', layout.program, ...layout.args);
  return args;
}

/**
 * Where the sandbox's /etc/resolv.conf is read from. A host whose resolv.conf is a link (systemd-resolved's
 * /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf) shows the link inside, read-only with /etc, and
 * bwrap follows it: the file is bound at the link's target instead, in the sandbox's own tree (/run is not the host's).
 */
export function resolvConfPath(): string {
  try {
    if (!lstatSync('/etc/resolv.conf').isSymbolicLink()) return '/etc/resolv.conf';
    const target = path.resolve('/etc', readlinkSync('/etc/resolv.conf'));
    return inside(target, '/etc') || inside(target, '/usr') ? '/etc/resolv.conf' : target;
  } catch {
    return '/etc/resolv.conf';
  }
}

/** `{id}-{service}`, cut to a valid host name label. */
export function sandboxHostname(service: string, id: string): string {
  const name = `${id}-${service}`.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 63).replace(/^-+|-+$/g, '');
  return name || 'tenant';
}
