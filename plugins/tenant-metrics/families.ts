import type { Registry } from 'prom-client';
import type { MetricType, ParsedFamily } from './parse.ts';

/** Prefix of every re-exposed tenant metric: a tenant can never name one of Tenement's own. */
export const PREFIX = 'tenant_';

/** A sample in the shape prom-client's registry renders. */
interface ExportedSample {
  labels: Record<string, string>;
  value: number;
  metricName: string;
}

interface Holding {
  samples: ExportedSample[];
}

interface SharedFamily {
  name: string;
  type: MetricType;
  help: string;
  /** Sample names the family prints (`foo`, `foo_bucket`, `foo_sum`, `foo_count`), so no other family may. */
  claims: string[];
  holders: Map<string, Holding>;
}

/** What a family writes on the wire: a histogram `foo` also owns `foo_bucket`, `foo_sum` and `foo_count`. */
function claimedNames(name: string, type: MetricType): string[] {
  if (type === 'histogram') return [name, `${name}_bucket`, `${name}_sum`, `${name}_count`];
  if (type === 'summary') return [name, `${name}_sum`, `${name}_count`];
  return [name];
}

/**
 * The tenant families on the shared prom-client registry. Each exposed name is one family with one type, made
 * of the samples of every instance that serves it; the text format allows nothing else. The first instance to
 * serve a name fixes its type and HELP while any instance still serves it; an instance serving the same name
 * with another type (or a name another family prints, like `foo_count` beside a histogram `foo`) has those
 * samples left out of /metrics and counted as `conflict`, and keeps them in its own API view.
 */
export class SharedFamilies {
  private readonly families = new Map<string, SharedFamily>();
  private readonly claims = new Map<string, SharedFamily>();
  private readonly byInstance = new Map<string, SharedFamily[]>();

  constructor(private readonly registry: Registry) {}

  /** Replaces what an instance contributes; answers how many of its samples were left out as conflicts. */
  replace(instanceKey: string, base: { service: string; instance: string }, parsed: readonly ParsedFamily[]): number {
    this.remove(instanceKey);
    const held: SharedFamily[] = [];
    let conflicts = 0;
    for (const family of parsed) {
      const name = PREFIX + family.name;
      const shared = this.families.get(name) ?? this.claim(name, family);
      if (!shared || shared.type !== family.type) {
        conflicts += family.samples.length;
        continue;
      }
      const samples = family.samples.map(
        (s): ExportedSample => ({ labels: Object.fromEntries([['service', base.service], ['instance', base.instance], ...s.labels]), value: s.value, metricName: PREFIX + s.name }),
      );
      shared.holders.set(instanceKey, { samples });
      held.push(shared);
    }
    if (held.length > 0) this.byInstance.set(instanceKey, held);
    return conflicts;
  }

  /** Takes an instance's samples out of /metrics (it stopped, hibernated, was removed, or its scrape failed). */
  remove(instanceKey: string): void {
    const held = this.byInstance.get(instanceKey);
    if (!held) return;
    this.byInstance.delete(instanceKey);
    for (const shared of held) {
      shared.holders.delete(instanceKey);
      if (shared.holders.size > 0) continue;
      this.families.delete(shared.name);
      for (const claim of shared.claims) this.claims.delete(claim);
      this.registry.removeSingleMetric(shared.name);
    }
  }

  /** Families exposed now (for tests and the docs' numbers). */
  get size(): number {
    return this.families.size;
  }

  private claim(name: string, family: ParsedFamily): SharedFamily | null {
    const claims = claimedNames(name, family.type);
    // Another plugin's metric of that name, or a name another tenant family prints: not ours to take.
    if (claims.some((claim) => this.claims.has(claim) || this.registry.getSingleMetric(claim) !== undefined)) return null;
    const shared: SharedFamily = {
      name,
      type: family.type,
      help: family.help || `Tenant metric ${family.name}, scraped from the instances that serve it.`,
      claims,
      holders: new Map(),
    };
    for (const claim of claims) this.claims.set(claim, shared);
    this.families.set(name, shared);
    this.registry.registerMetric(collector(shared) as unknown as Parameters<Registry['registerMetric']>[0]);
    return shared;
  }
}

/**
 * The object prom-client's registry asks for a family's samples: `get()` (JSON, and the text format through it)
 * answers what the last scrapes left, without waiting for any tenant.
 */
function collector(shared: SharedFamily) {
  const snapshot = () => {
    const values: ExportedSample[] = [];
    for (const holding of shared.holders.values()) for (const sample of holding.samples) values.push(sample);
    return { name: shared.name, help: shared.help, type: shared.type, values, aggregator: 'sum' as const };
  };
  return {
    name: shared.name,
    help: shared.help,
    type: shared.type,
    aggregator: 'sum',
    get: async () => snapshot(),
    reset: () => undefined,
  };
}
