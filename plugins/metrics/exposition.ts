import type { Registry } from 'prom-client';

type Family = Awaited<ReturnType<Registry['getMetricsAsJSON']>>[number];
type Sample = Family['values'][number] & { metricName?: string };

const escapeHelp = (text: string): string => text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
const escapeLabel = (text: string): string => text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function formatSample(family: Family, sample: Sample): string {
  const labels = Object.entries(sample.labels)
    .filter(([, value]) => value !== undefined)
    .map(([name, value]) => `${name}="${escapeLabel(String(value))}"`);
  return `${sample.metricName ?? family.name}${labels.length > 0 ? `{${labels.join(',')}}` : ''} ${formatValue(sample.value)}`;
}

/** Whether a sample is about one of the tenant's instances: its `instance` label is `service:<tenant>`. */
function ownedBy(sample: Sample, tenant: string): boolean {
  const instance = sample.labels['instance'];
  if (typeof instance !== 'string') return false;
  const colon = instance.indexOf(':');
  return colon > 0 && instance.slice(colon + 1) === tenant;
}

/**
 * What a tenant token gets from /api/metrics: only samples labelled with one of its own instances, in the
 * Prometheus text format. Families without an `instance` label (service-wide histograms, counts by state, the
 * Tenement process) mix every tenant's traffic and are left out entirely, as are families left empty.
 */
export async function tenantExposition(registry: Registry, tenant: string): Promise<string> {
  const families = await registry.getMetricsAsJSON();
  const blocks: string[] = [];
  for (const family of families) {
    const own = (family.values as Sample[]).filter((sample) => ownedBy(sample, tenant));
    if (own.length === 0) continue;
    const lines = [`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`];
    for (const sample of own) lines.push(formatSample(family, sample));
    blocks.push(lines.join('\n'));
  }
  return blocks.length > 0 ? `${blocks.join('\n\n')}\n` : '';
}
