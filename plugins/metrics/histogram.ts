import { Histogram, type Registry } from 'prom-client';

/**
 * Bucket counts kept as plain numbers. Observing costs a short loop and two additions, where prom-client's own
 * `observe` hashes and validates the label set on every call: this one runs once per proxied request.
 */
export class BucketCounts {
  /** Per bucket, not cumulative; the last slot is the +Inf overflow. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  /** `times` observations of the same value (an edge's counters give a count and a mean, not each request). */
  observe(value: number, times = 1): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]! += times;
    this.sum += value * times;
    this.count += times;
  }
}

export interface HistogramSeries {
  labels: Record<string, string>;
  data: BucketCounts;
}

/** A sample in the shape prom-client's registry renders (it prints `labels`, then `sharedLabels`). */
interface ExportedSample {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
}

/**
 * A prom-client histogram whose samples come from `BucketCounts` at scrape time instead of its own storage.
 * The registry renders a histogram through `getForPromString()` (and `get()`, used for JSON, goes through it
 * too), so overriding that one method is enough; it is not in prom-client's typings, which is why the e2e test
 * checks the rendered output with promtool.
 */
export class SnapshotHistogram extends Histogram<string> {
  // Own copies: prom-client keeps name and help as untyped fields (and a class field of the same name would
  // overwrite them after super()).
  private readonly familyName: string;
  private readonly familyHelp: string;

  constructor(
    config: { name: string; help: string; labelNames: string[]; buckets: number[]; registry: Registry },
    private readonly series: () => Iterable<HistogramSeries>,
  ) {
    super({ name: config.name, help: config.help, labelNames: config.labelNames, buckets: config.buckets, registers: [config.registry] });
    this.familyName = config.name;
    this.familyHelp = config.help;
  }

  async getForPromString(): Promise<{ name: string; help: string; type: 'histogram'; values: ExportedSample[]; aggregator: 'sum' }> {
    const name = this.familyName;
    const values: ExportedSample[] = [];
    for (const { labels, data } of this.series()) {
      let cumulative = 0;
      data.bounds.forEach((le, i) => {
        cumulative += data.counts[i]!;
        values.push({ labels: { ...labels, le }, sharedLabels: {}, value: cumulative, metricName: `${name}_bucket` });
      });
      values.push({ labels: { ...labels, le: '+Inf' }, sharedLabels: {}, value: data.count, metricName: `${name}_bucket` });
      values.push({ labels: { ...labels }, sharedLabels: {}, value: data.sum, metricName: `${name}_sum` });
      values.push({ labels: { ...labels }, sharedLabels: {}, value: data.count, metricName: `${name}_count` });
    }
    return { name, help: this.familyHelp, type: 'histogram', values, aggregator: 'sum' };
  }
}
