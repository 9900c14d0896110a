import { ErrorCodes, TenementError } from './errors.ts';
import type { Faults } from './faults.ts';
import type { InstanceFacts } from './hooks.ts';
import type { InstanceView } from './instance.ts';

type DescribeTap = (instance: InstanceView, facts: InstanceFacts) => unknown;

/** Which plugin set each key of one describe call's facts (a fresh facts object per call, so weakly held). */
const ownersOf = new WeakMap<InstanceFacts, Map<string, string>>();

/**
 * A `describe` tap as a plugin gives it, made to write into a facts object of its own: once it settles, its keys
 * are merged into the call's facts. A key another plugin already set is never overwritten: the later plugin's
 * facts are all left out and the clash is recorded as a fault naming both plugins and the key
 * (`tenement_internal_errors_total{where="describe"}`, and the server log), so no collision goes unnoticed.
 */
export function ownFacts(plugin: string, fn: DescribeTap, faults: Faults): (instance: InstanceView, facts: InstanceFacts) => Promise<void> {
  return async (instance, facts) => {
    const own: InstanceFacts = {};
    await fn(instance, own);
    const keys = Object.keys(own);
    if (keys.length === 0) return;
    let owners = ownersOf.get(facts);
    if (!owners) ownersOf.set(facts, (owners = new Map()));
    for (const key of keys) {
      const owner = owners.get(key) ?? (Object.hasOwn(facts, key) ? 'the caller' : undefined);
      if (owner === undefined) continue;
      const error = new TenementError(
        ErrorCodes.HOOK_FAILED,
        `plugins '${owner}' and '${plugin}' both describe facts.${key} of ${instance.key}: '${plugin}''s facts are left out`,
        { plugin, hook: 'describe' },
      );
      faults.record('describe', error, { plugin, other: owner, key });
      return;
    }
    for (const key of keys) {
      facts[key] = own[key];
      owners.set(key, plugin);
    }
  };
}
