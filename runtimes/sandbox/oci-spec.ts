/** What one sandboxed instance looks like inside, in the terms of the OCI runtime spec that runsc reads. */
export interface SandboxLayout {
  /** Absolute path of the program to run (the sandbox sees the host's / read-only, so host paths work). */
  program: string;
  args: readonly string[];
  cwd: string;
  env: Record<string, string>;
  /** Tenement's data directory: hidden inside, except for the instance's own DATA_DIR. */
  dataRoot: string;
  dataDir: string;
  hostname: string;
  /** The uid/gid the tenant runs as (never 0 when Tenement is root). */
  user: { uid: number; gid: number };
  /** A network namespace file to join (network: 'private' | 'none'); absent: the one runsc is started in. */
  netns?: string;
  /** A file shown as /etc/resolv.conf, read-only (SpawnSpec.resolvConf: service discovery's resolver). */
  resolvConf?: string;
  /** limits.pids: tasks (processes and threads) the tenant may have, enforced by gVisor's kernel (RLIMIT_NPROC). */
  maxTasks?: number;
  /** Absent: a sandbox of its own. Otherwise the root container of a warm sandbox, or a container joining one. */
  role?: SandboxRole;
}

/**
 * runsc reads the CRI annotations to put several containers in one sandbox: the first is the sandbox's root,
 * the next ones name it. Each container still gets its own pid, mount, ipc and uts namespaces in the sentry.
 */
export type SandboxRole = { kind: 'sandbox' } | { kind: 'container'; sandboxId: string };

interface Mount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: false;
    user: { uid: number; gid: number; additionalGids: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<'bounding' | 'effective' | 'inheritable' | 'permitted' | 'ambient', string[]>;
    noNewPrivileges: true;
    rlimits: Array<{ type: string; hard: number; soft: number }>;
  };
  root: { path: string; readonly: true };
  hostname: string;
  mounts: Mount[];
  linux: { namespaces: Array<{ type: string; path?: string }> };
  annotations?: Record<string, string>;
}

const inside = (child: string, parent: string): boolean => child === parent || child.startsWith(parent.endsWith('/') ? parent : `${parent}/`);

const NO_CAPABILITIES = { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] };
const PRIVATE_TMP = '/tmp';

/**
 * The bundle's config.json. The root is the host's / served read-only by runsc's gofer (no rootfs copy), with
 * gVisor's own /proc, /dev and /sys. Written over it, in order: a private tmpfs on /tmp; a tmpfs over
 * Tenement's data directory (other tenants' DATA_DIRs, the state database, the bundles); the instance's
 * DATA_DIR bound back read-write at the same path (the only writable host folder); and the cwd bound back
 * read-only when one of those tmpfs hid it. No capabilities, no_new_privs, the tenant's uid.
 *
 * No `network` namespace entry unless `netns` is given: with runsc --network=host the sandbox then uses the
 * network namespace runsc runs in, the host's, and the app's 127.0.0.1:PORT is reachable like a process-tier
 * app (and so are the host's loopback services from inside: network: 'private' is the isolated choice).
 */
export function ociSpec(layout: SandboxLayout): OciSpec {
  const mounts: Mount[] = [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs' },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: PRIVATE_TMP, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777'] },
  ];
  // A data dir under /tmp (tests) is already hidden by the private /tmp; masking it again is harmless.
  mounts.push({ destination: layout.dataRoot, type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=0755'] });
  mounts.push({ destination: layout.dataDir, type: 'bind', source: layout.dataDir, options: ['rbind', 'rw'] });
  const hidden = (inside(layout.cwd, PRIVATE_TMP) || inside(layout.cwd, layout.dataRoot)) && !inside(layout.cwd, layout.dataDir);
  if (hidden) mounts.push({ destination: layout.cwd, type: 'bind', source: layout.cwd, options: ['rbind', 'ro'] });
  if (layout.resolvConf) mounts.push({ destination: '/etc/resolv.conf', type: 'bind', source: layout.resolvConf, options: ['bind', 'ro'] });

  const namespaces: Array<{ type: string; path?: string }> = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (layout.netns) namespaces.push({ type: 'network', path: layout.netns });

  return {
    ociVersion: '1.0.0',
    process: {
      terminal: false,
      user: { uid: layout.user.uid, gid: layout.user.gid, additionalGids: [] },
      args: [layout.program, ...layout.args],
      env: Object.entries(layout.env).map(([name, value]) => `${name}=${value}`),
      cwd: layout.cwd,
      capabilities: NO_CAPABILITIES,
      noNewPrivileges: true,
      // gVisor's default is 1024 open files, too few for a busy server. RLIMIT_NPROC counts the uid's tasks in
      // this sandbox's own kernel (the sandbox is all of them): a fork past it gets EAGAIN, as on Linux.
      rlimits: [
        { type: 'RLIMIT_NOFILE', hard: 65_536, soft: 65_536 },
        ...(layout.maxTasks !== undefined ? [{ type: 'RLIMIT_NPROC', hard: layout.maxTasks, soft: layout.maxTasks }] : []),
      ],
    },
    root: { path: '/', readonly: true },
    hostname: layout.hostname,
    mounts,
    linux: { namespaces },
    ...(layout.role ? { annotations: roleAnnotations(layout.role) } : {}),
  };
}

function roleAnnotations(role: SandboxRole): Record<string, string> {
  return role.kind === 'sandbox'
    ? { 'io.kubernetes.cri.container-type': 'sandbox' }
    : { 'io.kubernetes.cri.container-type': 'container', 'io.kubernetes.cri.sandbox-id': role.sandboxId };
}

/** `{id}-{service}`, cut to a valid host name label. */
export function sandboxHostname(service: string, id: string): string {
  const name = `${id}-${service}`.toLowerCase().replace(/[^a-z0-9-]/g, '-').slice(0, 63).replace(/^-+|-+$/g, '');
  return name || 'tenant';
}
