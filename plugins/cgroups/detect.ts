import { existsSync, mkdirSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { readText, writeText } from './cgroupfs.ts';

export const CGROUP_ROOT = '/sys/fs/cgroup';
/** The top directory Tenement creates in each hierarchy; everything below it is ours. */
export const TOP = 'tenement';

export type Controller = 'memory' | 'cpu' | 'pids' | 'cpuacct';
const LIMIT_CONTROLLERS = ['memory', 'cpu', 'pids'] as const;

/** What this host offers: the cgroup version in use and, per controller, the directory Tenement's tree lives in. */
export interface CgroupHost {
  version: 1 | 2 | null;
  /** Controller → the root of its hierarchy (v2: the same directory for all). */
  roots: Partial<Record<Controller, string>>;
  /** Why a controller is missing, by name: shown when a service asks for a limit it needs. */
  problems: Partial<Record<Controller, string>>;
}

function describe(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  return e.code ? `${e.code}: ${e.message}` : String(error);
}

/**
 * Probes by creating Tenement's top directory: only a successful mkdir proves write access (root in a
 * read-only /sys, or a user without delegation, can read everything and write nothing).
 */
function probe(root: string): string | null {
  try {
    mkdirSync(path.join(root, TOP), { recursive: true });
    return null;
  } catch (error) {
    return `cannot create ${path.join(root, TOP)} (${describe(error)})`;
  }
}

/** v2 when the unified hierarchy at /sys/fs/cgroup itself offers memory, cpu and pids. */
function detectV2(base: string): CgroupHost | null {
  const controllers = readText(path.join(base, 'cgroup.controllers'));
  if (controllers === null) return null;
  const offered = new Set(controllers.trim().split(/\s+/));
  if (!LIMIT_CONTROLLERS.every((c) => offered.has(c))) return null;
  const host: CgroupHost = { version: 2, roots: {}, problems: {} };
  const problem = probe(base);
  // Children only get a controller's files once every ancestor enables it in cgroup.subtree_control.
  const enable = LIMIT_CONTROLLERS.map((c) => `+${c}`).join(' ');
  for (const dir of [base, path.join(base, TOP)]) {
    try {
      if (!problem) writeText(path.join(dir, 'cgroup.subtree_control'), enable);
    } catch {
      // Already enabled, or refused: the per-controller check below tells.
    }
  }
  const enabled = new Set((readText(path.join(base, TOP, 'cgroup.subtree_control')) ?? '').trim().split(/\s+/));
  for (const c of LIMIT_CONTROLLERS) {
    if (problem) host.problems[c] = problem;
    else if (!enabled.has(c)) host.problems[c] = `cgroup v2 controller '${c}' cannot be enabled in ${path.join(base, TOP)}/cgroup.subtree_control`;
    else host.roots[c] = base;
  }
  // v2 accounts CPU time in cpu.stat of the cpu controller: no separate cpuacct.
  return host;
}

/** v1: one hierarchy per controller under /sys/fs/cgroup/<name> (cpu and cpuacct may be co-mounted). */
function detectV1(base: string): CgroupHost {
  const host: CgroupHost = { version: 1, roots: {}, problems: {} };
  const seen = new Set<string>();
  for (const c of [...LIMIT_CONTROLLERS, 'cpuacct'] as const) {
    const dir = path.join(base, c);
    if (!existsSync(path.join(dir, 'cgroup.procs'))) {
      host.problems[c] = `no cgroup v1 '${c}' hierarchy at ${dir} (and no cgroup v2 offering memory, cpu and pids)`;
      continue;
    }
    // cpu -> cpu,cpuacct: one hierarchy, one cgroup directory for both.
    const real = realpathSync(dir);
    const problem = seen.has(real) ? null : probe(real);
    seen.add(real);
    if (problem) host.problems[c] = problem;
    else host.roots[c] = real;
  }
  return host;
}

/** `base` is where the hierarchies are mounted: /sys/fs/cgroup, or elsewhere in a container or a test. */
export function detectCgroups(base = CGROUP_ROOT): CgroupHost {
  if (process.platform !== 'linux') {
    const why = `cgroups need Linux (this host runs ${process.platform})`;
    return { version: null, roots: {}, problems: { memory: why, cpu: why, pids: why, cpuacct: why } };
  }
  return detectV2(base) ?? detectV1(base);
}

/** Controllers a set of limits needs. */
export function neededControllers(limits: { memory?: number; cpu?: number; pids?: number }): Controller[] {
  const needed: Controller[] = [];
  if (limits.memory !== undefined) needed.push('memory');
  if (limits.cpu !== undefined) needed.push('cpu');
  if (limits.pids !== undefined) needed.push('pids');
  return needed;
}

/** Why these limits cannot be applied here, or null when every controller they need is usable. */
export function missingFor(host: CgroupHost, needed: readonly Controller[]): string | null {
  const missing = needed.filter((c) => !host.roots[c]).map((c) => `${c}: ${host.problems[c] ?? 'unavailable'}`);
  return missing.length > 0 ? missing.join('; ') : null;
}
