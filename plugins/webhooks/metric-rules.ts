/**
 * Metric rules: a threshold on a metric of the shared prom-client registry, read on every evaluation tick. Each
 * series (label set) is its own subject: it fires once it has been past the threshold for `for`, and clears when
 * it is back (or the series is gone, e.g. the instance stopped).
 */
import type { Registry } from 'prom-client';
import type { Incidents, Subject } from './incidents.ts';
import { humanMs } from './event-rules.ts';
import type { MetricRule } from './schema.ts';

/** Series read per rule per tick: a metric with huge cardinality costs a bounded amount. */
const MAX_SERIES = 1_000;

interface Sample {
  labels: Record<string, string>;
  value: number;
}

const SUFFIXES = ['_bucket', '_count', '_sum'] as const;

/**
 * Samples of `name`: a gauge or counter by its name, or a histogram's or summary's `_count`/`_sum`; null when the
 * registry has no such metric.
 */
async function samples(registry: Registry, name: string): Promise<Sample[] | null> {
  let metric = registry.getSingleMetric(name);
  if (!metric) {
    const suffix = SUFFIXES.find((s) => name.endsWith(s));
    if (suffix === undefined) return null;
    metric = registry.getSingleMetric(name.slice(0, -suffix.length));
    if (!metric) return null;
  }
  const data = await metric.get();
  const out: Sample[] = [];
  for (const value of data.values) {
    const seriesName = (value as { metricName?: string }).metricName ?? data.name;
    if (seriesName !== name || !Number.isFinite(value.value)) continue;
    const labels: Record<string, string> = {};
    for (const [key, label] of Object.entries(value.labels)) if (label !== undefined) labels[key] = String(label);
    out.push({ labels, value: value.value });
    if (out.length >= MAX_SERIES) break;
  }
  return out;
}

function seriesKey(labels: Record<string, string>): string {
  return JSON.stringify(Object.keys(labels).sort().map((key) => [key, labels[key]]));
}

function subjectOf(key: string, labels: Record<string, string>): Subject {
  const service = Object.hasOwn(labels, 'service') ? labels.service! : null;
  const id = Object.hasOwn(labels, 'instance') ? labels.instance! : null;
  const instance = service !== null && id !== null ? (id.includes(':') ? id : `${service}:${id}`) : null;
  return { key, service, instance };
}

function describeSeries(name: string, labels: Record<string, string>): string {
  const text = Object.keys(labels)
    .sort()
    .map((key) => `${key}="${labels[key]}"`)
    .join(',');
  return text ? `${name}{${text}}` : name;
}

export class MetricRules {
  /** rule -> series key -> since when it has been past the threshold. */
  private readonly breachedSince = new Map<MetricRule, Map<string, number>>();
  /** Rules whose metric the registry lacks (a typo, a plugin not loaded): said once each, not every tick. */
  private readonly missing = new Set<MetricRule>();

  constructor(
    private readonly rules: readonly MetricRule[],
    private readonly incidents: Incidents,
    private readonly registry: Registry,
    private readonly warn: (message: string) => void,
  ) {
    for (const rule of rules) this.breachedSince.set(rule, new Map());
  }

  async tick(now: number): Promise<void> {
    for (const rule of this.rules) {
      const pending = this.breachedSince.get(rule)!;
      const seen = new Set<string>();
      const found = await samples(this.registry, rule.metric);
      if (found === null && !this.missing.has(rule)) {
        this.missing.add(rule);
        this.warn(`alert rule '${rule.name}': no metric named ${rule.metric} in the registry (yet): it cannot fire until one is registered`);
      }
      for (const sample of found ?? []) {
        if (!this.matches(rule, sample.labels)) continue;
        const key = seriesKey(sample.labels);
        seen.add(key);
        const subject = subjectOf(key, sample.labels);
        const series = describeSeries(rule.metric, sample.labels);
        const breached = rule.above !== undefined ? sample.value > rule.above : sample.value < rule.below!;
        const threshold = rule.above !== undefined ? `above ${rule.above}` : `below ${rule.below}`;
        if (!breached) {
          pending.delete(key);
          this.incidents.clear(rule, key, `${series} is back: ${sample.value} (threshold ${threshold})`, now);
          continue;
        }
        const since = pending.get(key) ?? now;
        pending.set(key, since);
        if (now - since < rule.for) continue;
        const metric: NonNullable<Parameters<Incidents['trigger']>[6]> = { name: rule.metric, labels: sample.labels, value: sample.value };
        if (rule.above !== undefined) metric.above = rule.above;
        if (rule.below !== undefined) metric.below = rule.below;
        const lasted = rule.for > 0 ? ` for ${humanMs(now - since)}` : '';
        this.incidents.trigger(rule, 'metric', subject, `${series} is ${sample.value}, ${threshold}${lasted}`, null, now, metric);
      }
      for (const key of pending.keys()) if (!seen.has(key)) pending.delete(key);
      for (const key of this.incidents.openKeys(rule)) {
        if (!seen.has(key)) this.incidents.clear(rule, key, `${rule.metric}: the series ${key} is gone`, now);
      }
    }
  }

  private matches(rule: MetricRule, labels: Record<string, string>): boolean {
    if (rule.services !== undefined && !(Object.hasOwn(labels, 'service') && rule.services.includes(labels.service!))) return false;
    for (const [key, value] of Object.entries(rule.labels ?? {})) if (!Object.hasOwn(labels, key) || labels[key] !== value) return false;
    return true;
  }
}
