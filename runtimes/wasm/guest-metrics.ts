/**
 * A wasm instance's own metrics, as its component publishes them through the `tenement:http/metrics` import
 * (checked in the worker: core/wasm/component/guest-metrics.ts). Kept for the instance's run, bounded, and
 * rendered in the Prometheus text format for whoever reads them through the handle (the tenant-metrics plugin,
 * which parses and caps them exactly as it does a process's /metrics).
 */
import type { GuestMetricUpdate } from '../../core/wasm/types.ts';

/** Series one instance may hold; updates to new series past it are dropped (and counted in the exposition). */
export const MAX_GUEST_SERIES = 10_000;
/** Characters of names and labels all its series may hold (30 labels of 1 KiB on 10,000 series would be 600 MB); at 2 MiB the rendering stays under the default maxBytes. */
export const MAX_GUEST_TEXT = 2 * 1024 * 1024;

interface Series {
  labels: [string, string][];
  value: number;
}

interface Family {
  kind: 'set' | 'add';
  series: Map<string, Series>;
}

const escapeLabel = (text: string): string => text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

export class GuestMetrics {
  private readonly families = new Map<string, Family>();
  private size = 0;
  private text = 0;
  /** Updates refused here: a name used both as a gauge and a counter, or a new series past the bound. */
  refused = 0;

  apply(updates: readonly GuestMetricUpdate[]): void {
    for (const update of updates) {
      let family = this.families.get(update.name);
      if (!family) {
        family = { kind: update.kind, series: new Map() };
        this.families.set(update.name, family);
      }
      if (family.kind !== update.kind) {
        this.refused++;
        continue;
      }
      const labels = [...update.labels].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      const key = labels.map(([l, v]) => `${l}\u0000${v}`).join('\u0000');
      const series = family.series.get(key);
      if (series) {
        series.value = update.kind === 'set' ? update.value : series.value + update.value;
        continue;
      }
      const text = key.length + update.name.length;
      if (this.size >= MAX_GUEST_SERIES || this.text + text > MAX_GUEST_TEXT) {
        this.refused++;
        continue;
      }
      family.series.set(key, { labels, value: update.value });
      this.size++;
      this.text += text;
    }
  }

  /** The exposition: `set` names as gauges, `add` names as counters. */
  render(): string {
    const lines: string[] = [];
    for (const [name, family] of this.families) {
      if (family.series.size === 0) continue;
      lines.push(`# TYPE ${name} ${family.kind === 'set' ? 'gauge' : 'counter'}`);
      for (const { labels, value } of family.series.values()) {
        const text = labels.map(([l, v]) => `${l}="${escapeLabel(v)}"`).join(',');
        lines.push(`${name}${text ? `{${text}}` : ''} ${formatValue(value)}`);
      }
    }
    return lines.length > 0 ? `${lines.join('\n')}\n` : '';
  }
}
