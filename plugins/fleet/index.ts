/**
 * Fleet mode (docs/fleet.md): many Tenement servers, one fleet, over NATS JetStream KV. Off unless
 * `settings.fleet` is set. Every node accepts every tenant; an instance lives on exactly one node (its
 * placement); a request reaching another node goes through the ordinary data plane to a local stand-in
 * instance whose handle points at the owner's proxy (the fleet's `spawn` tap answers before the runtime for an
 * instance placed elsewhere), signed with the fleet secret so the owner serves it and never forwards it again.
 */
import type { PlacementPolicy } from './placement.ts';
import { fleetServiceFields, fleetSettingsFields } from './schema.ts';
import { definePlugin } from '../../sdk/index.ts';

export type { PlacementPolicy, PlaceRequest, CandidateNode } from './placement.ts';
export { fleetOf, type FleetNode } from './registry.ts';

/** The fleet plugin with placement policies of one's own, asked before the default (docs/fleet.md). */
export function fleetPlugin(options: { place?: PlacementPolicy | readonly PlacementPolicy[] } = {}) {
  const policies = options.place === undefined ? [] : Array.isArray(options.place) ? [...(options.place as PlacementPolicy[])] : [options.place as PlacementPolicy];
  return definePlugin({
    name: 'fleet',
    version: '1.0.0',
    kernel: '^1',
    settingsFields: fleetSettingsFields,
    serviceFields: fleetServiceFields,
    async setup(ctx) {
      const settings = ctx.settings.fleet;
      if (!settings) return;
      await (await import('./run.ts')).setupFleet(ctx, settings, policies);
    },
  });
}

export default fleetPlugin();
