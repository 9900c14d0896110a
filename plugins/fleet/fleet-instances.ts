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
import { StreamRelay } from './relay-stream.ts';
import type { FleetState } from './state.ts';

const name = z.string().regex(DNS_LABEL, 'expected a DNS label');
const listQuery = z.strictObject({ service: name.optional() });
const actionParams = z.strictObject({ service: name, id: name, action: z.enum(['start', 'restart', 'hibernate', 'stop']) });
const instanceParams = z.strictObject({ service: name, id: name });
/** Passed on to the owner's /api/logs (which checks each the way it does its own callers'): only bounded in size here. */
const word = z.string().max(1024);
const logsQuery = z.strictObject({ search: word.optional(), since: z.string().max(64).optional(), until: z.string().max(64).optional(), stream: z.enum(['stdout', 'stderr']).optional(), limit: z.string().regex(/^\d{1,5}$/).optional() });
const streamQuery = z.strictObject({ search: word.optional(), since: z.string().max(64).optional(), stream: z.enum(['stdout', 'stderr']).optional() });
const weightBody = z.strictObject({ weight: z.number().int().min(0).max(100) });
/** A relayed stored-lines answer larger than this is refused (10,000 lines of a few hundred bytes fit). */
const MAX_LOGS_BYTES = 16 * 1024 * 1024;
/** A relayed history (360 points) or instance view is small. */
const MAX_SMALL_BYTES = 1024 * 1024;

function queryString(base: Record<string, string>, extra: Record<string, string | undefined>): string {
  const params = new URLSearchParams(base);
  for (const [key, value] of Object.entries(extra)) if (value !== undefined) params.set(key, value);
  return params.toString();
}

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
            const answer = await callNode(node, record.advertise, secret, self, identity!, 'GET', target);
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

  /** The live owner of a placed instance the caller may see; another tenant's instance is as missing as a missing one. */
  const ownerOf = (identity: Identity | null, service: string, id: string): { node: string; advertise: string } => {
    const tenant = tenantOf(identity);
    const placement = state.placement(service, id);
    // Another tenant's instance answers as a missing one: ids of other tenants cannot be probed.
    if (!placement || (tenant !== null && id !== tenant)) {
      throw new TenementError(ErrorCodes.UNKNOWN_INSTANCE, `unknown instance '${service}:${id}'`);
    }
    const owner = state.node(placement.node);
    if (!owner || !state.isLive(placement.node) || owner.advertise === '') {
      throw new TenementError(ErrorCodes.FLEET_UNAVAILABLE, `${service}:${id} is placed on ${placement.node}, which is not reachable now`, { retryAfter: 1 });
    }
    return { node: placement.node, advertise: owner.advertise };
  };

  /** One relayed call whose answer (status and body) is this route's. */
  const relay = async (
    identity: Identity | null,
    owner: { node: string; advertise: string },
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    target: string,
    reply: { code(status: number): unknown },
    maxBytes: number,
    body?: unknown,
  ): Promise<unknown> => {
    let answer;
    try {
      answer = await callNode(owner.node, owner.advertise, secret, self, identity!, method, target, body, maxBytes);
    } catch (error) {
      throw new TenementError(ErrorCodes.FLEET_UNAVAILABLE, `node ${owner.node} did not answer: ${String(error)}`, { retryAfter: 1 });
    }
    reply.code(answer.status);
    return answer.body;
  };

  ctx.api.route({
    method: 'GET',
    url: '/api/fleet/instances/:service/:id/logs',
    summary: "An instance's stored output lines, read from the node that owns it (the filters of GET /api/logs)",
    tags: ['fleet'],
    access: 'token',
    params: instanceParams,
    query: logsQuery,
    handler: async ({ identity, params, query, reply }) => {
      const owner = ownerOf(identity, params.service, params.id);
      return relay(identity, owner, 'GET', `/api/logs?${queryString({ service: params.service, id: params.id }, query)}`, reply, MAX_LOGS_BYTES);
    },
  });

  const streams = new StreamRelay(secret, self);
  ctx.onClose(() => streams.close());
  ctx.api.route({
    method: 'GET',
    url: '/api/fleet/instances/:service/:id/logs/stream',
    summary: "An instance's live output lines as Server-Sent Events, relayed from the node that owns it",
    description: 'The filters of GET /api/logs/stream. A relayed stream ends after 10 minutes or 64 MiB (an EventSource reconnects); 64 are open at once per node.',
    tags: ['fleet'],
    access: 'token',
    params: instanceParams,
    query: streamQuery,
    handler: async ({ identity, params, query, reply }) => {
      const owner = ownerOf(identity, params.service, params.id);
      const target = `/api/logs/stream?${queryString({ service: params.service, id: params.id }, query)}`;
      const refused = await streams.relay(owner.node, owner.advertise, identity!, target, reply.raw, () => reply.hijack());
      if (refused === null) return undefined;
      reply.code(refused.status);
      return refused.body;
    },
  });

  ctx.api.route({
    method: 'GET',
    url: '/api/fleet/instances/:service/:id/history',
    summary: "An instance's last hour (the dashboard's charts), read from the node that owns it",
    tags: ['fleet'],
    access: 'token',
    params: instanceParams,
    handler: async ({ identity, params, reply }) => {
      const owner = ownerOf(identity, params.service, params.id);
      return relay(identity, owner, 'GET', `/api/instances/${params.service}/${params.id}/history`, reply, MAX_SMALL_BYTES);
    },
  });

  ctx.api.route({
    method: 'PUT',
    url: '/api/fleet/instances/:service/:id/weight',
    summary: "Set an instance's weight on the node that owns it (the rules of PUT /api/instances/:service/:id/weight)",
    tags: ['fleet'],
    access: 'token',
    params: instanceParams,
    body: weightBody,
    handler: async ({ identity, params, body, reply, audit }) => {
      audit.target = `${params.service}:${params.id}`;
      audit.instanceId = params.id;
      const owner = ownerOf(identity, params.service, params.id);
      const answer = await relay(identity, owner, 'PUT', `/api/instances/${params.service}/${params.id}/weight`, reply, MAX_SMALL_BYTES, { weight: body.weight });
      audit.detail = `weight ${body.weight} on ${owner.node}`;
      return answer;
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
      const owner = ownerOf(identity, params.service, params.id);
      const call = OWNER_CALL[params.action];
      const answer = await relay(identity, owner, call.method, `/api/instances/${params.service}/${params.id}${call.suffix}`, reply, MAX_SMALL_BYTES);
      audit.detail = `${params.action} on ${owner.node} (${reply.statusCode})`;
      return answer;
    },
  });
}
