import type { InstanceView } from '../../core/instance.ts';
import type { InstanceDirectory, ServiceDirectory } from '../../core/plugin-context.ts';
import type { InstanceState } from '../../core/types.ts';
import { BucketCounts } from './histogram.ts';

/** Proxied requests take from under a millisecond (a kept-alive hop) to minutes (a long download). */
export const REQUEST_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** A cold wake is tens of milliseconds for a small app, seconds for a heavy one; startupTimeout caps it. */
export const WAKE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Every lifecycle state, so gauges by state can report zero for the states nobody is in. */
const STATE_SET: Record<InstanceState, true> = {
  created: true,
  starting: true,
  running: true,
  restarting: true,
  stopping: true,
  stopped: true,
  hibernated: true,
  waking: true,
  failed: true,
};
export const STATES = Object.keys(STATE_SET) as InstanceState[];

/** `code_class` label by status / 100; index 0 is a request that ended before any status was sent. */
export const CODE_CLASSES = ['aborted', '1xx', '2xx', '3xx', '4xx', '5xx', '6xx', '7xx', '8xx', '9xx'] as const;

export class ServiceSeries {
  readonly labels: { service: string };
  readonly requestDuration = new BucketCounts(REQUEST_BUCKETS);
  readonly wakeDuration = new BucketCounts(WAKE_BUCKETS);
  readonly wakeQueueWait = new BucketCounts(WAKE_BUCKETS);

  constructor(service: string) {
    this.labels = { service };
  }
}

/** One instance's counters as plain numbers; the registry reads them at scrape time. */
export class InstanceSeries {
  readonly labels: { service: string; instance: string };
  /** Requests by CODE_CLASSES index. */
  readonly requests = new Float64Array(CODE_CLASSES.length);

  constructor(
    instance: InstanceView,
    readonly service: ServiceSeries,
  ) {
    this.labels = { service: instance.service, instance: instance.key };
  }
}

/**
 * The plugin's counters, kept outside prom-client so that the proxy's hot path only adds numbers. Series are
 * keyed by the instance's view and listed through the instance directory, so an instance that is removed takes
 * its series with it, and one created again under the same name starts from zero (a counter reset).
 */
export class MetricsState {
  private readonly byInstance = new WeakMap<InstanceView, InstanceSeries>();
  private readonly byService = new Map<string, ServiceSeries>();

  constructor(
    private readonly directory: InstanceDirectory,
    services: ServiceDirectory,
  ) {
    // Every configured service reports its histograms from the start, so rate() has a zero to start from.
    for (const name of services.names()) this.service(name);
  }

  service(name: string): ServiceSeries {
    let series = this.byService.get(name);
    if (!series) {
      series = new ServiceSeries(name);
      this.byService.set(name, series);
    }
    return series;
  }

  services(): Iterable<ServiceSeries> {
    return this.byService.values();
  }

  /** The series of a registered instance; null for one already removed (a request that ended after it went). */
  of(instance: InstanceView): InstanceSeries | null {
    const known = this.byInstance.get(instance);
    if (known) return known;
    if (this.directory.getByKey(instance.key) !== instance) return null;
    const series = new InstanceSeries(instance, this.service(instance.service));
    this.byInstance.set(instance, series);
    return series;
  }

  /** Registered instances with their series. */
  *instances(): Iterable<[InstanceView, InstanceSeries]> {
    for (const instance of this.directory.list()) {
      const series = this.of(instance);
      if (series) yield [instance, series];
    }
  }
}
