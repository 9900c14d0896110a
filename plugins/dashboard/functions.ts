import type { Registry } from 'prom-client';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { Identity } from '../../core/types.ts';

type Sample = { labels: Record<string, string | number | undefined>; value: number; metricName?: string };

export interface FunctionStats {
  service: string;
  id: string;
  key: string;
  invocations: number;
  ok: number;
  traps: number;
  timeouts: number;
  otherFailures: number;
  outcomes: Record<string, number>;
}

export interface FunctionServiceStats {
  service: string;
  count: number;
  meanMs: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

async function samples(registry: Registry, name: string): Promise<Sample[]> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return [];
  return ((await metric.get()).values ?? []) as Sample[];
}

/** The q-quantile from Prometheus cumulative buckets (`le` in seconds), linear within a bucket, in ms. */
function quantileMs(buckets: Array<{ le: number; count: number }>, total: number, q: number): number | null {
  if (total === 0) return null;
  const rank = q * total;
  let previousLe = 0;
  let previousCount = 0;
  for (const { le, count } of buckets) {
    if (count >= rank) {
      if (le === Infinity) return Math.round(previousLe * 1000 * 1000) / 1000;
      const within = count === previousCount ? 0 : (rank - previousCount) / (count - previousCount);
      return Math.round((previousLe + (le - previousLe) * within) * 1000 * 1000) / 1000;
    }
    previousLe = le;
    previousCount = count;
  }
  return null;
}

/**
 * Wasm functions' numbers, read from the wasm tier's metrics on the shared registry (the tier keeps them;
 * this only reads). Invocations are per instance (tenant-scoped); durations are per service, for admins only,
 * since a service's histogram mixes every tenant's calls.
 */
export async function functionStats(registry: Registry, identity: Identity): Promise<{ functions: FunctionStats[]; services: FunctionServiceStats[] }> {
  const byKey = new Map<string, FunctionStats>();
  for (const sample of await samples(registry, 'tenement_wasm_invocations_total')) {
    const key = String(sample.labels['instance'] ?? '');
    const colon = key.indexOf(':');
    if (colon <= 0) continue;
    const service = key.slice(0, colon);
    const id = key.slice(colon + 1);
    if (identity.kind === 'tenant' && identity.tenant !== id) continue;
    let entry = byKey.get(key);
    if (!entry) {
      entry = { service, id, key, invocations: 0, ok: 0, traps: 0, timeouts: 0, otherFailures: 0, outcomes: {} };
      byKey.set(key, entry);
    }
    const outcome = String(sample.labels['outcome'] ?? 'error');
    entry.outcomes[outcome] = (entry.outcomes[outcome] ?? 0) + sample.value;
    entry.invocations += sample.value;
    if (outcome === 'ok') entry.ok += sample.value;
    else if (outcome === 'trap') entry.traps += sample.value;
    else if (outcome === 'timeout') entry.timeouts += sample.value;
    else entry.otherFailures += sample.value;
  }
  const functions = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  if (identity.kind !== 'admin') return { functions, services: [] };

  const perService = new Map<string, { buckets: Array<{ le: number; count: number }>; sum: number; count: number }>();
  const of = (service: string) => {
    let entry = perService.get(service);
    if (!entry) {
      entry = { buckets: [], sum: 0, count: 0 };
      perService.set(service, entry);
    }
    return entry;
  };
  for (const sample of await samples(registry, 'tenement_wasm_duration_seconds')) {
    const service = String(sample.labels['service'] ?? '');
    if (service === '') continue;
    const entry = of(service);
    if (sample.metricName?.endsWith('_bucket')) {
      const le = sample.labels['le'];
      entry.buckets.push({ le: le === '+Inf' ? Infinity : Number(le), count: sample.value });
    } else if (sample.metricName?.endsWith('_sum')) entry.sum = sample.value;
    else if (sample.metricName?.endsWith('_count')) entry.count = sample.value;
  }
  const services: FunctionServiceStats[] = [...perService]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([service, { buckets, sum, count }]) => {
      buckets.sort((a, b) => a.le - b.le);
      return {
        service,
        count,
        meanMs: count === 0 ? null : Math.round((sum / count) * 1000 * 1000) / 1000,
        p50: quantileMs(buckets, count, 0.5),
        p95: quantileMs(buckets, count, 0.95),
        p99: quantileMs(buckets, count, 0.99),
      };
    });
  return { functions, services };
}

export function functionsRoute(ctx: Pick<PluginContext, 'api' | 'metrics'>): void {
  ctx.api.route({
    method: 'GET',
    url: '/api/functions',
    summary: 'Wasm functions: invocations, traps and timeouts per instance; duration percentiles per service (admins)',
    tags: ['dashboard'],
    access: 'token',
    handler: ({ identity }) => functionStats(ctx.metrics, identity!),
  });
}
