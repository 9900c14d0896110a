/**
 * Instances across the fleet, for `ten ps --fleet` and the dashboard: `GET /api/fleet/instances` lists every
 * placement with its instance as its owner reports it (asked through a relayed call, relay.ts), and
 * `POST /api/fleet/instances/:service/:id/:action` acts on an instance on whichever node owns it. The caller's
 * identity goes with each relayed call, so a tenant sees and acts on its own instances only, on every node.
 */
import { z } from 'zod';
import { DNS_LABEL } from '../../core/config/schema.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { Identity } from '../../core/types.ts';
import { callNode } from './relay.ts';
import type { FleetState } from './state.ts';

const name = z.string().regex(DNS_LABEL, 'expected a DNS label');
const listQuery = z.strictObject({ service: name.optional() });
const actionParams = z.strictObject({ service: name, id: name, action: z.enum(['start', 'restart', 'hibernate', 'stop']) });

/** Each action as the owner's own instances API takes it. */
const OWNER_CALL: Record<'start' | 'restart' | 'hibernate' | 'stop', { method: 'POST' | 'DELETE'; suffix: string }> = {
  start: { method: 'POST', suffix: '' },
  restart: { method: 'POST', suffix: '/restart' },
  hibernate: { method: 'POST', suffix: '/hibernate' },
  stop: { method: 'DELETE', suffix: '' },
};

interface OwnerView {
  service: string;
  id: string;
}

const isView = (value: unknown): value is OwnerView =>
  typeof value === 'object' && value !== null && typeof (value as OwnerView).service === 'string' && typeof (value as OwnerView).id === 'string';

export function registerFleetInstanceRoutes(ctx: PluginContext, state: FleetState, secret: string, self: string): void {
  const tenantOf = (identity: Identity | null): string | null => (identity?.kind === 'tenant' ? identity.tenant : null);

  ctx.api.route({
    method: 'GET',
    url: '/api/fleet/instances',
    summary: "Every instance of the fleet with its node, as its owner reports it (a tenant: its own, on every node)",
    description: 'Each live node owning an instance is asked for its instances with the caller\'s identity; `instance` is null for one placed but unknown to its owner yet, or whose node did not answer (named in `unreachable`).',
    tags: ['fleet'],
    access: 'token',
    query: listQuery,
    handler: async ({ identity, query }) => {
      const tenant = tenantOf(identity);
      const placements = [...state.placements()].filter((p) => (tenant === null || p.id === tenant) && (query.service === undefined || p.service === query.service));
      const owners = new Set(placements.map((p) => p.node));
      const views = new Map<string, unknown>();
      const unreachable: string[] = [];
      const target = query.service === undefined ? '/api/instances' : `/api/instances?service=${encodeURIComponent(query.service)}`;
      await Promise.all(
        [...owners].map(async (node) => {
          const record = state.node(node);
          if (!record || !state.isLive(node) || record.advertise === '') return;
          try {
            const answer = await callNode(record.advertise, secret, self, identity!, 'GET', target);
            const list = (answer.body as { instances?: unknown } | null)?.instances;
            if (answer.status !== 200 || !Array.isArray(list)) throw new Error(`answered ${answer.status}`);
            for (const view of list) if (isView(view)) views.set(`${node}\0${view.service}\0${view.id}`, view);
          } catch (error) {
            unreachable.push(node);
            ctx.log.debug({ node, err: String(error) }, 'fleet: a node did not list its instances');
          }
        }),
      );
      const instances = placements
        .map((p) => ({
          node: p.node,
          nodeLive: state.isLive(p.node),
          key: `${p.service}:${p.id}`,
          service: p.service,
          id: p.id,
          instance: views.get(`${p.node}\0${p.service}\0${p.id}`) ?? null,
        }))
        .sort((a, b) => (a.key === b.key ? 0 : a.key < b.key ? -1 : 1));
      return { self, instances, unreachable: unreachable.sort() };
    },
  });

  ctx.api.route({
    method: 'POST',
    url: '/api/fleet/instances/:service/:id/:action',
    summary: 'Start, restart, hibernate or stop an instance on the node that owns it',
    description: "Relayed to the owner's own instances API with the caller's identity: the owner's answer (status and body) is this one.",
    tags: ['fleet'],
    access: 'token',
    params: actionParams,
    handler: async ({ identity, params, reply, audit }) => {
      audit.target = `${params.service}:${params.id}`;
      audit.instanceId = params.id;
      const tenant = tenantOf(identity);
      const placement = state.placement(params.service, params.id);
      // Another tenant's instance answers as a missing one: ids of other tenants cannot be probed.
      if (!placement || (tenant !== null && params.id !== tenant)) {
        throw new TenementError(ErrorCodes.UNKNOWN_INSTANCE, `unknown instance '${params.service}:${params.id}'`);
      }
      const owner = state.node(placement.node);
      if (!owner || !state.isLive(placement.node) || owner.advertise === '') {
        throw new TenementError(ErrorCodes.FLEET_UNAVAILABLE, `${params.service}:${params.id} is placed on ${placement.node}, which is not reachable now`, { retryAfter: 1 });
      }
      const call = OWNER_CALL[params.action];
      let answer;
      try {
        answer = await callNode(owner.advertise, secret, self, identity!, call.method, `/api/instances/${params.service}/${params.id}${call.suffix}`);
      } catch (error) {
        throw new TenementError(ErrorCodes.FLEET_UNAVAILABLE, `node ${placement.node} did not answer: ${String(error)}`, { retryAfter: 1 });
      }
      audit.detail = `${params.action} on ${placement.node} (${answer.status})`;
      reply.code(answer.status);
      return answer.body;
    },
  });
}
