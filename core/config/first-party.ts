/**
 * The first-party plugins' config contributions, by plugin name: the tiers each runtime registers and the
 * fields each plugin adds. They are merged into a loaded plugin's own (so `ten serve`'s default plugins bring
 * their tiers and fields), type the SDK's ConfigInput, and let an unknown field's error name the plugin that
 * would accept it when that plugin is not loaded.
 */
import { networkServiceFields, networkSettingsFields } from '../../plugins/network/schema.ts';
import { storageServiceFields } from '../../plugins/storage/schema.ts';
import { otelSettingsFields } from '../../plugins/otel/schema.ts';
import { tenantMetricsServiceFields } from '../../plugins/tenant-metrics/schema.ts';
import { webhooksSettingsFields } from '../../plugins/webhooks/schema.ts';
import { edgeSettingsFields } from '../../plugins/edge-haproxy/schema.ts';
import { fleetServiceFields, fleetSettingsFields } from '../../plugins/fleet/schema.ts';
import { wasmServiceFields } from '../../runtimes/wasm/schema.ts';
import { snapshotsServiceFields } from '../../plugins/snapshots/schema.ts';
import { autoscaleServiceFields, autoscaleSettingsFields } from '../../plugins/autoscale/schema.ts';
import type { SchemaContribution } from './compose.ts';

export const FIRST_PARTY_TIERS = ['process', 'namespace', 'sandbox', 'microvm', 'wasm'] as const;
export type FirstPartyTier = (typeof FIRST_PARTY_TIERS)[number];

export const FIRST_PARTY: readonly SchemaContribution[] = [
  { name: 'runtime-process', tiers: [{ name: 'process' }] },
  { name: 'runtime-namespace', tiers: [{ name: 'namespace' }] },
  { name: 'runtime-sandbox', tiers: [{ name: 'sandbox' }] },
  { name: 'runtime-microvm', tiers: [{ name: 'microvm' }] },
  { name: 'runtime-wasm', tiers: [{ name: 'wasm' }], serviceFields: wasmServiceFields },
  { name: 'network', serviceFields: networkServiceFields, settingsFields: networkSettingsFields },
  { name: 'storage', serviceFields: storageServiceFields },
  { name: 'otel', settingsFields: otelSettingsFields },
  { name: 'tenant-metrics', serviceFields: tenantMetricsServiceFields },
  { name: 'webhooks', settingsFields: webhooksSettingsFields },
  { name: 'edge-haproxy', settingsFields: edgeSettingsFields },
  { name: 'fleet', serviceFields: fleetServiceFields, settingsFields: fleetSettingsFields },
  { name: 'snapshots', serviceFields: snapshotsServiceFields },
  { name: 'autoscale', serviceFields: autoscaleServiceFields, settingsFields: autoscaleSettingsFields },
];

const BY_NAME = new Map(FIRST_PARTY.map((c) => [c.name, c]));

/** A loaded plugin's contribution: its definition's own, plus the first-party registry's for its name. */
export function withFirstParty(contribution: SchemaContribution): SchemaContribution[] {
  const known = BY_NAME.get(contribution.name);
  return known && known !== contribution ? [known, contribution] : [contribution];
}

/**
 * Which first-party plugin accepts a field, by where it is: `services` + `egress`, `settings` + `network`,
 * `services` + `limits.storage`, or which registers a tier.
 */
export function firstPartyOwner(section: 'services' | 'settings' | 'tier', field: string): string | undefined {
  for (const contribution of FIRST_PARTY) {
    if (section === 'tier') {
      if (contribution.tiers?.some((t) => t.name === field)) return contribution.name;
      continue;
    }
    const fields = section === 'services' ? contribution.serviceFields : contribution.settingsFields;
    if (!fields) continue;
    const [head, sub] = field.split('.', 2) as [string, string | undefined];
    if (!Object.hasOwn(fields, head)) continue;
    if (sub === undefined) return contribution.name;
    const schema = fields[head] as { unwrap?: () => unknown; shape?: Record<string, unknown> };
    const inner = (typeof schema.unwrap === 'function' ? schema.unwrap() : schema) as { shape?: Record<string, unknown> };
    if (inner.shape && Object.hasOwn(inner.shape, sub)) return contribution.name;
  }
  return undefined;
}
