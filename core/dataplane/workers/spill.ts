/**
 * `proxy.accept: 'spill'`: the proxy workers accept only when the processes already accepting are saturated and
 * the host has a core to spare (nginx's old accept_mutex idea, decided by load instead of a lock). The kernel's
 * process always accepts; a worker starts parked (forked, routes mirrored, not accepting) and is given the shared
 * listening socket when every accepting process's event loop is busy and the host's CPUs are not; it is parked
 * again (it closes its copy of the socket; connections it holds stay with it) once the accepting processes idle.
 *
 * Why: each event-loop wake costs Node a fixed toll (epoll, the loop's phases, a callback into JavaScript per
 * read). Connections split over two processes on a host whose cores are already busy (the tenants' own processes
 * run beside the proxy) give each loop fewer events per wake and the same tolls: more CPU per request, no more
 * throughput (bench/README.md, Proxy). With a free core the second process adds throughput, and spill uses it.
 * Parking is safe only on one shared accept queue (a closed SO_REUSEPORT socket drops its queued connections),
 * so spill always shares the kernel's listening socket, whatever the Node version.
 */
import { cpus } from 'node:os';
import { performance, type EventLoopUtilization } from 'node:perf_hooks';

/** How often the kernel's process samples the loads (and workers report theirs). */
export const SPILL_SAMPLE_MS = 250;

export interface SpillThresholds {
  /** Mean event-loop utilization of the accepting processes at or above which they count as saturated. */
  saturated: number;
  /**
   * Idle CPU (in cores) the host must show for another process to get a core of its own. Most of a core: on a
   * 2-core host running the load, the backend and one saturated proxy (0.1-0.3 core idle), a second process cut
   * throughput by a third (bench/README.md, Proxy).
   */
  idleCores: number;
  /** Consecutive saturated samples (with idle cores) before one more worker accepts. */
  spillAfter: number;
  /** Mean utilization below which the accepting processes count as idle. */
  quiet: number;
  /** Consecutive quiet samples before the last worker to spill is parked. */
  parkAfter: number;
}

export const DEFAULT_SPILL: SpillThresholds = { saturated: 0.85, idleCores: 0.75, spillAfter: 2, quiet: 0.3, parkAfter: 8 };

export type SpillDecision = 'spill' | 'park' | null;

/**
 * The decision, over one sample at a time: `elus` are the accepting processes' utilizations over the last
 * interval (the kernel's first), `idleCores` the host's idle CPU over it, `parked` how many workers wait.
 */
export class SpillPolicy {
  private saturatedRun = 0;
  private quietRun = 0;

  constructor(private readonly thresholds: SpillThresholds = DEFAULT_SPILL) {}

  sample(elus: readonly number[], idleCores: number, parked: number, accepting: number): SpillDecision {
    let sum = 0;
    for (const elu of elus) sum += Number.isFinite(elu) ? Math.min(1, Math.max(0, elu)) : 0;
    const mean = elus.length > 0 ? sum / elus.length : 0;
    const t = this.thresholds;
    this.saturatedRun = mean >= t.saturated && idleCores >= t.idleCores ? this.saturatedRun + 1 : 0;
    this.quietRun = mean < t.quiet ? this.quietRun + 1 : 0;
    if (parked > 0 && this.saturatedRun >= t.spillAfter) {
      this.saturatedRun = 0;
      return 'spill';
    }
    if (accepting > 0 && this.quietRun >= t.parkAfter) {
      this.quietRun = 0;
      return 'park';
    }
    return null;
  }
}

/** A process's event-loop utilization since the previous call. */
export function eluMeter(): () => number {
  let last: EventLoopUtilization = performance.eventLoopUtilization();
  return () => {
    const now = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(now, last);
    last = now;
    return delta.utilization;
  };
}

/** The host's idle CPU, in cores, since the previous call (os.cpus() tick counts). */
export function idleCoresMeter(): () => number {
  const read = (): { idle: number; total: number } => {
    let idle = 0;
    let total = 0;
    for (const cpu of cpus()) {
      const times = cpu.times;
      idle += times.idle;
      total += times.user + times.nice + times.sys + times.idle + times.irq;
    }
    return { idle, total };
  };
  let last = read();
  const count = Math.max(1, cpus().length);
  return () => {
    const now = read();
    const total = now.total - last.total;
    const idle = now.idle - last.idle;
    last = now;
    return total > 0 ? (idle / total) * count : 0;
  };
}
