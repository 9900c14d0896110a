import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Controller, CgroupHost } from './detect.ts';
import { emptyCgroup, readKey, readNumber, removeDir, writeText } from './cgroupfs.ts';

export interface Limits {
  memory?: number;
  cpu?: number;
  pids?: number;
}

/** The CFS period the cpu fraction is expressed in: 100 ms, the kernel's default. */
const CPU_PERIOD_US = 100_000;
/** The kernel refuses quotas under 1 ms. */
const CPU_MIN_QUOTA_US = 1_000;

export interface CgroupUsage {
  memoryBytes: number | null;
  cpuSeconds: number | null;
}

/**
 * One instance run's cgroup, in every hierarchy it needs. Made fresh for each spawn (so counters such as
 * oom_kill start at zero and nothing of an earlier run is left in it) and removed when the run ends.
 */
export class InstanceCgroup {
  /** Controller → this cgroup's directory in that controller's hierarchy. */
  readonly dirs = new Map<Controller, string>();

  constructor(
    private readonly host: CgroupHost,
    /** Relative to each hierarchy root: tenement/<scope>/<service>/<id>. */
    readonly relPath: string,
    readonly limits: Limits,
  ) {
    for (const [controller, root] of Object.entries(host.roots) as Array<[Controller, string]>) {
      this.dirs.set(controller, path.join(root, relPath));
    }
  }

  /** Unique directories (v2, or co-mounted v1 controllers, share one). */
  get uniqueDirs(): string[] {
    return [...new Set(this.dirs.values())];
  }

  /** The files the wrapper writes its pid to, one per hierarchy. */
  get procsFiles(): string[] {
    return this.uniqueDirs.map((dir) => path.join(dir, 'cgroup.procs'));
  }

  /** Creates the directories and writes the limits; throws (with the file named) when the kernel refuses one. */
  create(): void {
    for (const dir of this.uniqueDirs) mkdirSync(dir, { recursive: true });
    if (this.host.version === 2) {
      // Every level between the top and the leaf must pass the controllers down.
      const root = this.host.roots.memory ?? this.host.roots.cpu ?? this.host.roots.pids;
      if (root) {
        const parts = this.relPath.split('/');
        for (let i = 1; i < parts.length; i += 1) {
          const dir = path.join(root, ...parts.slice(0, i));
          try {
            writeText(path.join(dir, 'cgroup.subtree_control'), '+memory +cpu +pids');
          } catch {
            // Already enabled (or refused: the limit write below then fails with the file named).
          }
        }
      }
    }
    const { memory, cpu, pids } = this.limits;
    const v1 = this.host.version === 1;
    if (memory !== undefined) this.write('memory', v1 ? 'memory.limit_in_bytes' : 'memory.max', String(memory));
    if (memory !== undefined && !v1) this.tryWrite('memory', 'memory.swap.max', '0');
    if (cpu !== undefined) {
      const quota = Math.max(CPU_MIN_QUOTA_US, Math.round(cpu * CPU_PERIOD_US));
      if (v1) {
        this.write('cpu', 'cpu.cfs_period_us', String(CPU_PERIOD_US));
        this.write('cpu', 'cpu.cfs_quota_us', String(quota));
      } else {
        this.write('cpu', 'cpu.max', `${quota} ${CPU_PERIOD_US}`);
      }
    }
    if (pids !== undefined) this.write('pids', 'pids.max', String(pids));
  }

  /** Raises pids.max to `tasks` when it is lower (a runtime's own threads count too: see CgroupControl). */
  raisePidsMax(tasks: number): void {
    const dir = this.dirs.get('pids');
    if (!dir) return;
    const current = readFileSync(path.join(dir, 'pids.max'), 'utf8').trim();
    if (current !== 'max' && Number(current) < tasks) this.write('pids', 'pids.max', String(tasks));
  }

  private write(controller: Controller, file: string, value: string): void {
    const dir = this.dirs.get(controller);
    if (!dir) throw new Error(`no ${controller} cgroup`);
    const target = path.join(dir, file);
    try {
      writeText(target, value);
    } catch (error) {
      throw new Error(`cannot write ${value} to ${target}: ${(error as Error).message}`);
    }
  }

  private tryWrite(controller: Controller, file: string, value: string): void {
    try {
      this.write(controller, file, value);
    } catch {
      // Optional knob (no swap accounting on this kernel).
    }
  }

  /** How many processes the kernel has OOM-killed in this cgroup; null when the counter cannot be read. */
  oomKills(): number | null {
    const dir = this.dirs.get('memory');
    if (!dir) return null;
    return this.host.version === 1
      ? readKey(path.join(dir, 'memory.oom_control'), 'oom_kill')
      : readKey(path.join(dir, 'memory.events'), 'oom_kill');
  }

  /** Memory charged to the cgroup and CPU time of all its processes, children included. */
  usage(): CgroupUsage {
    const memoryDir = this.dirs.get('memory');
    const memoryBytes = memoryDir
      ? readNumber(path.join(memoryDir, this.host.version === 1 ? 'memory.usage_in_bytes' : 'memory.current'))
      : null;
    let cpuSeconds: number | null = null;
    if (this.host.version === 1) {
      const acct = this.dirs.get('cpuacct');
      const ns = acct ? readNumber(path.join(acct, 'cpuacct.usage')) : null;
      cpuSeconds = ns === null ? null : ns / 1e9;
    } else {
      const cpuDir = this.dirs.get('cpu');
      const us = cpuDir ? readKey(path.join(cpuDir, 'cpu.stat'), 'usage_usec') : null;
      cpuSeconds = us === null ? null : us / 1e6;
    }
    return { memoryBytes, cpuSeconds };
  }

  /** SIGKILLs every process left in it (in every hierarchy: a v1 process may have been moved out of one). */
  async empty(): Promise<void> {
    for (const dir of this.uniqueDirs) await emptyCgroup(dir);
  }

  /** Kills whatever is left in it and removes every directory. Returns the directories it could not remove. */
  async destroy(): Promise<string[]> {
    const left: string[] = [];
    for (const dir of this.uniqueDirs) {
      await emptyCgroup(dir);
      if (!(await removeDir(dir))) left.push(dir);
    }
    return left;
  }
}
