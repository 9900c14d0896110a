import { Counter, Gauge, type Registry } from 'prom-client';
import type { InstanceView } from '../../core/instance.ts';
import type { InstanceDirectory } from '../../core/plugin-context.ts';
import type { InstanceStats } from '../../core/types.ts';
import { STATES, type InstanceSeries, type MetricsState } from './series.ts';

/** A runtime that takes longer than this to report an instance's usage is left out of that scrape. */
const STATS_TIMEOUT_MS = 2_000;

type Usage = Array<{ series: InstanceSeries; stats: InstanceStats }>;

function statsWithin(instance: InstanceView, ms: number): Promise<InstanceStats | null> {
  const handle = instance.handle;
  if (!handle) return Promise.resolve(null);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    handle.stats().then(
      (stats) => {
        clearTimeout(timer);
        resolve(stats);
      },
      () => {
        clearTimeout(timer);
        resolve(null);
      },
    );
  });
}

/**
 * Gauges over the instance registry, computed when scraped: instances by state, in-flight requests, each
 * instance's state, restarts and resource usage. Series of instances that are gone disappear with them.
 */
export function trackInstances(instances: InstanceDirectory, state: MetricsState, registry: Registry): void {
  // Every configured service (MetricsState knows them all from the start).
  const services = (): string[] => [...state.services()].map((s) => s.labels.service);

  new Gauge({
    name: 'tenement_instances',
    help: 'Instances by service and lifecycle state (zero for states no instance is in).',
    labelNames: ['service', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const service of services()) for (const s of STATES) this.set({ service, state: s }, 0);
      for (const instance of instances.list()) this.inc({ service: instance.service, state: instance.state });
    },
  });

  new Gauge({
    name: 'tenement_proxy_in_flight_requests',
    help: 'Requests being proxied to the service right now.',
    labelNames: ['service'],
    registers: [registry],
    collect() {
      this.reset();
      for (const service of services()) this.set({ service }, 0);
      for (const instance of instances.list()) if (instance.inFlight > 0) this.inc({ service: instance.service }, instance.inFlight);
    },
  });

  new Gauge({
    name: 'tenement_instance_state',
    help: "1 for each instance's current lifecycle state (only the current state is reported), with the tier it runs on.",
    labelNames: ['service', 'instance', 'state', 'tier'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [instance, series] of state.instances()) this.set({ ...series.labels, state: instance.state, tier: instance.tier }, 1);
    },
  });

  new Counter({
    name: 'tenement_instance_restarts_total',
    help: 'Automatic restarts by the restart policy (after a crash or failed health checks).',
    labelNames: ['service', 'instance'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [instance, series] of state.instances()) this.inc(series.labels, instance.restarts);
    },
  });

  // One read serves every collect that starts while it runs: the registry starts all collects of a scrape in
  // the same tick, so CPU and memory come from one stats() call per instance.
  let pending: Promise<Usage> | null = null;
  const readUsage = (): Promise<Usage> => {
    if (pending) return pending;
    const running = [...state.instances()].filter(([instance]) => instance.state === 'running' && instance.handle);
    const read = Promise.all(
      running.map(async ([instance, series]) => ({ series, stats: await statsWithin(instance, STATS_TIMEOUT_MS) })),
    ).then((all) => all.filter((u): u is Usage[number] => u.stats !== null));
    pending = read.finally(() => {
      pending = null;
    });
    return pending;
  };

  new Counter({
    name: 'tenement_instance_cpu_seconds_total',
    help: "CPU time (user + system) used by the running instance's process, as its runtime reports it; resets when the process restarts.",
    labelNames: ['service', 'instance'],
    registers: [registry],
    async collect() {
      const all = await readUsage();
      this.reset();
      for (const { series, stats } of all) if (stats.cpuSeconds !== null) this.inc(series.labels, stats.cpuSeconds);
    },
  });

  new Gauge({
    name: 'tenement_instance_resident_memory_bytes',
    help: "Resident memory of the running instance's process, as its runtime reports it.",
    labelNames: ['service', 'instance'],
    registers: [registry],
    async collect() {
      const all = await readUsage();
      this.reset();
      for (const { series, stats } of all) if (stats.memoryBytes !== null) this.set(series.labels, stats.memoryBytes);
    },
  });
}
