/**
 * Plugins contribute the config they own (issue 9): a runtime registers its tiers, a plugin adds fields to
 * `services.<name>` and `settings` as zod fragments on its definition. This module merges the fragments of the
 * loaded plugins into one set of fields per section, so the config accepts exactly what the loaded plugins
 * understand. A field that two plugins both declare as an object (e.g. `limits`: cgroups' memory/cpu/pids and
 * storage's storage/storageWarn) is merged into one strict object; any other clash stops start-up.
 */
import { z } from 'zod';
import { ErrorCodes, TenementError } from '../errors.ts';
import type { TierTraits } from '../tier-traits.ts';

/** Zod fields by name, as in `z.strictObject(fields)`. */
export type FieldShape = Record<string, z.ZodType>;

export interface TierProbeResult {
  available: boolean;
  reason?: string;
}

/** A tier a runtime provides: `isolation` and `fallback` accept its name while the runtime is loaded. */
export interface TierDeclaration {
  name: string;
  /** What it does with cgroups, DATA_DIR's link and tenant uids (unstated traits keep the safe defaults). */
  traits?: Partial<TierTraits>;
  /** Whether the host can run it now (`ten doctor`, fallbacks); without one the tier is trusted. */
  probe?: () => TierProbeResult | Promise<TierProbeResult>;
}

/** The schema part of a plugin definition (PluginDefinition extends it). */
export interface SchemaContribution {
  name: string;
  tiers?: readonly TierDeclaration[];
  /** Fields of `services.<name>`. */
  serviceFields?: FieldShape;
  /** Fields of `settings`. */
  settingsFields?: FieldShape;
}

export interface ComposedSchema {
  serviceFields: FieldShape;
  settingsFields: FieldShape;
  /** Registered tier -> the plugin that provides it. */
  tiers: ReadonlyMap<string, string>;
}

/** The strict object inside an optional/default wrapper, if that is what `schema` is. */
function objectInside(schema: z.ZodType): { object: z.ZodObject; wrap: 'optional' | 'none' } | null {
  if (schema instanceof z.ZodObject) return { object: schema, wrap: 'none' };
  if (schema instanceof z.ZodOptional && schema.unwrap() instanceof z.ZodObject) {
    return { object: schema.unwrap() as z.ZodObject, wrap: 'optional' };
  }
  return null;
}

function mergeField(section: string, key: string, current: { schema: z.ZodType; owner: string }, next: z.ZodType, owner: string): z.ZodType {
  if (current.schema === next) return next;
  const a = objectInside(current.schema);
  const b = objectInside(next);
  if (a && b) {
    for (const sub of Object.keys(b.object.shape)) {
      if (Object.hasOwn(a.object.shape, sub) && a.object.shape[sub] !== b.object.shape[sub]) {
        throw clash(`${section}.${key}.${sub}`, current.owner, owner);
      }
    }
    const merged = z.strictObject({ ...a.object.shape, ...b.object.shape });
    return a.wrap === 'optional' && b.wrap === 'optional' ? merged.optional() : merged;
  }
  throw clash(`${section}.${key}`, current.owner, owner);
}

function clash(field: string, first: string, second: string): TenementError {
  return new TenementError(ErrorCodes.PLUGIN_MANIFEST, `plugin '${second}' declares the config field ${field}, which '${first}' already declares`, {
    plugin: second,
    hook: 'register',
  });
}

function mergeSection(section: string, base: FieldShape, contributions: readonly SchemaContribution[], pick: (c: SchemaContribution) => FieldShape | undefined): FieldShape {
  const fields = new Map<string, { schema: z.ZodType; owner: string }>(Object.entries(base).map(([key, schema]) => [key, { schema, owner: 'core' }]));
  for (const contribution of contributions) {
    for (const [key, schema] of Object.entries(pick(contribution) ?? {})) {
      const current = fields.get(key);
      fields.set(key, { schema: current ? mergeField(section, key, current, schema, contribution.name) : schema, owner: current?.owner ?? contribution.name });
    }
  }
  return Object.fromEntries([...fields].map(([key, { schema }]) => [key, schema]));
}

/** Merges core's own fields with the loaded plugins' fragments; a plugin listed twice counts once. */
export function composeSchema(core: { serviceFields: FieldShape; settingsFields: FieldShape }, contributions: readonly SchemaContribution[]): ComposedSchema {
  const tiers = new Map<string, string>();
  for (const contribution of contributions) {
    for (const tier of contribution.tiers ?? []) {
      const owner = tiers.get(tier.name);
      if (owner !== undefined && owner !== contribution.name) {
        throw new TenementError(ErrorCodes.PLUGIN_MANIFEST, `plugin '${contribution.name}' registers the tier '${tier.name}', which '${owner}' already provides`, {
          plugin: contribution.name,
          hook: 'register',
        });
      }
      tiers.set(tier.name, contribution.name);
    }
  }
  return {
    serviceFields: mergeSection('services.<name>', core.serviceFields, contributions, (c) => c.serviceFields),
    settingsFields: mergeSection('settings', core.settingsFields, contributions, (c) => c.settingsFields),
    tiers,
  };
}

/** Manifest checks of the schema part of a definition (zod fragments are recognised by their `_zod` core). */
export const contributionManifest = {
  tiers: z
    .array(
      z.strictObject({
        name: z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, 'expected a tier name of lowercase letters, digits and -'),
        traits: z.record(z.string(), z.unknown()).optional(),
        probe: z.custom<() => unknown>((f) => typeof f === 'function', 'expected a probe() function').optional(),
      }),
    )
    .optional(),
  serviceFields: z.record(z.string(), z.custom<z.ZodType>(isZodType, 'expected a zod schema')).optional(),
  settingsFields: z.record(z.string(), z.custom<z.ZodType>(isZodType, 'expected a zod schema')).optional(),
  options: z.custom<z.ZodType>(isZodType, 'expected a zod schema').optional(),
};

export function isZodType(value: unknown): value is z.ZodType {
  return typeof value === 'object' && value !== null && '_zod' in value && typeof (value as { safeParse?: unknown }).safeParse === 'function';
}
