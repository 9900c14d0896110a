import type { Tier } from './config/schema.ts';
import { TIERS } from './config/schema.ts';
import { ErrorCodes, TenementError, errorMessage } from './errors.ts';
import type { KernelHooks } from './hooks.ts';
import type { Logger } from './logger.ts';
import type { ServiceConfig } from './config/schema.ts';

/** The tier a service runs on, and why it is not the one it asked for (when it is not). */
export interface TierChoice {
  tier: Tier;
  /** Set when a fallback was taken: what was wrong with the tiers before it. */
  fallbackReason: string | null;
}

/** Tiers some loaded runtime spawns: the first-party ones, and any other a runtime tapped `spawn.for()` with. */
export function providedTiers(hooks: KernelHooks): Tier[] {
  // tapable's HookMap keeps its hooks in `_map` (not in its typings); without it only first-party tiers are listed.
  const keys = (hooks.spawn as unknown as { _map?: Map<unknown, unknown> })._map?.keys() ?? [];
  const candidates = new Set<string>([...TIERS, ...[...keys].filter((key): key is string => typeof key === 'string')]);
  return [...candidates].filter((tier) => (hooks.spawn.get(tier)?.taps.length ?? 0) > 0);
}

/** Whether the host can run `tier` now, asking its runtime's `probe` tap (a runtime without one is trusted). */
async function probe(hooks: KernelHooks, tier: Tier): Promise<{ available: boolean; reason?: string }> {
  if ((hooks.spawn.get(tier)?.taps.length ?? 0) === 0) return { available: false, reason: `no loaded runtime provides the '${tier}' tier` };
  const hook = hooks.probe.get(tier);
  if (!hook || hook.taps.length === 0) return { available: true };
  try {
    return (await hook.promise()) ?? { available: true };
  } catch (error) {
    return { available: false, reason: errorMessage(error) };
  }
}

/**
 * Picks each service's tier at start-up: its `isolation` when the host can run it, else the first of its
 * `fallback` list that works (logged, and named in each instance's `spawned` event). A service none of
 * whose tiers has a runtime stops start-up; one whose runtime exists but cannot run here keeps its tier, so
 * its spawns fail with the runtime's own reason and fix.
 */
export async function chooseTiers(
  services: Readonly<Record<string, ServiceConfig>>,
  hooks: KernelHooks,
  log: Logger,
): Promise<Map<string, TierChoice>> {
  const choices = new Map<string, TierChoice>();
  const probes = new Map<Tier, Promise<{ available: boolean; reason?: string }>>();
  const probed = (tier: Tier) => probes.get(tier) ?? probes.set(tier, probe(hooks, tier)).get(tier)!;
  for (const [name, service] of Object.entries(services)) {
    const wanted: Tier[] = [service.isolation, ...(service.fallback ?? [])];
    if (!wanted.some((tier) => (hooks.spawn.get(tier)?.taps.length ?? 0) > 0)) {
      const provided = providedTiers(hooks).join(', ') || 'none';
      throw new TenementError(
        ErrorCodes.TIER_UNAVAILABLE,
        `services.${name}.isolation: the '${service.isolation}' tier is not provided by any loaded runtime (available: ${provided})`,
      );
    }
    const reasons: string[] = [];
    let chosen: TierChoice | null = null;
    for (const tier of wanted) {
      const result = await probed(tier);
      if (result.available) {
        chosen = { tier, fallbackReason: reasons.length > 0 ? reasons.join('; ') : null };
        break;
      }
      reasons.push(`${tier}: ${result.reason ?? 'unavailable'}`);
    }
    if (!chosen) {
      log.error({ service: name, reasons }, 'no tier of this service can run on this host; its spawns will fail');
      chosen = { tier: service.isolation, fallbackReason: null };
    } else if (chosen.fallbackReason) {
      log.warn({ service: name, tier: chosen.tier, wanted: service.isolation, why: chosen.fallbackReason }, 'falling back to another tier');
    }
    choices.set(name, chosen);
  }
  return choices;
}
