/**
 * The fleet's management API: nodes and placements as this node sees them, and cordon/uncordon/drain of any
 * node (kept in the control bucket, picked up by that node with its next heartbeat). Admin tokens see and do
 * everything; a tenant token sees only its own instances' placements.
 */
import { z } from 'zod';
import type { KV } from 'nats';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { encodeToken } from './keys.ts';
import { encodeRecord, type NodeState } from './records.ts';
import type { FleetState } from './state.ts';

/** Control bucket key holding a node's requested state. */
export function adminKey(node: string): string {
  return `admin.${encodeToken(node)}`;
}

const nodeParams = z.strictObject({ node: z.string().min(1).max(128) });
const ACTIONS: ReadonlyArray<[string, NodeState, string]> = [
  ['cordon', 'cordoned', 'Cordon a node: no new instance is placed on it (those there stay)'],
  ['uncordon', 'active', 'Uncordon a node: it takes new instances again'],
  ['drain', 'draining', 'Drain a node: its instances move to other nodes (each woken there on its next request)'],
];

export function registerFleetRoutes(ctx: PluginContext, state: FleetState, control: KV, self: string): void {
  ctx.api.route({
    method: 'GET',
    url: '/api/fleet/nodes',
    summary: 'Nodes of the fleet with their last heartbeat, liveness, labels, capacity and load',
    tags: ['fleet'],
    access: 'admin',
    handler: () => ({
      self,
      nodes: state.nodes().map((node) => ({ ...node, placements: state.loadOf(node.id) })),
    }),
  });

  ctx.api.route({
    method: 'GET',
    url: '/api/fleet/placements',
    summary: 'Which node each instance lives on (a tenant token: its own instances only)',
    tags: ['fleet'],
    access: 'token',
    handler: ({ identity }) => {
      const tenant = identity?.kind === 'tenant' ? identity.tenant : null;
      const placements = [];
      for (const placement of state.placements()) {
        if (tenant !== null && placement.id !== tenant) continue;
        placements.push({ ...placement, live: state.isLive(placement.node) });
      }
      return { placements };
    },
  });

  for (const [action, target, summary] of ACTIONS) {
    ctx.api.route({
      method: 'POST',
      url: `/api/fleet/nodes/:node/${action}`,
      summary,
      tags: ['fleet'],
      access: 'admin',
      params: nodeParams,
      handler: async ({ params, audit }) => {
        audit.target = `node:${params.node}`;
        if (!state.node(params.node)) throw new TenementError(ErrorCodes.NOT_FOUND, `unknown fleet node '${params.node}'`);
        await control.put(adminKey(params.node), encodeRecord({ state: target, at: Date.now() }));
        audit.detail = `${action} (${target})`;
        return { node: params.node, state: target };
      },
    });
  }
}
