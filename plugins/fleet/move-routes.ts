/**
 * A move's routes (docs/fleet-move.md): the admin's move route, and the signed node-to-node ones the source and
 * the target of a move call each other on (prepare, receive, commit, abort, and the archive the target pulls).
 */
import { z } from 'zod';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { packStream, type PackSource, type Packed } from './archive.ts';
import { checkId, type MoveReceiver } from './move-receive.ts';
import { CALL_MS, type MoveResult } from './move-result.ts';
import { CallVerifier, NODE_HEADER, callNode, type Peer } from './peer.ts';
import type { FleetState } from './state.ts';
import { storageRoom } from './storage-data.ts';

const NAME = z.string().min(1).max(256);

/** An archive the source announced, packed as the target pulls it (once). */
export interface Outgoing {
  sources: PackSource[];
  to: string;
  sent: Promise<Packed> | null;
}

export interface MoveRouteDeps {
  self: string;
  secret: string;
  state: FleetState;
  maxBytes: number;
  /** By token. */
  outgoing: Map<string, Outgoing>;
  receiver: MoveReceiver;
  move(service: string, id: string, to: string | null, why: string): Promise<MoveResult>;
  peer(node: string): Peer;
}

/** The signed node-to-node routes, and the admin's move route. */
export function registerMoveRoutes(ctx: PluginContext, deps: MoveRouteDeps, forward: (service: string, id: string) => string | undefined): void {
  const verifier = new CallVerifier(deps.secret, deps.self);
  const verify = (request: { headers: Record<string, unknown>; method: string; url: string; body?: unknown }): string =>
    verifier.verify(request.headers[NODE_HEADER], request.method, request.url, request.body === undefined ? '' : JSON.stringify(request.body));
  const names = { service: NAME, id: NAME };

  ctx.api.route({
    method: 'POST',
    url: '/api/fleet/instances/:service/:id/move',
    summary: 'Move an instance to another node with its data (live with CRIU where it can, else stopped, copied and started)',
    tags: ['fleet'],
    access: 'admin',
    params: z.strictObject(names),
    body: z.strictObject({ to: z.string().min(1).max(128) }),
    handler: async ({ params, body, audit }) => {
      audit.target = `instance:${params.service}:${params.id}`;
      audit.instanceId = params.id;
      audit.detail = `move to ${body.to}`;
      if (!ctx.services.get(params.service)) throw new TenementError(ErrorCodes.NOT_FOUND, `unknown service '${params.service}'`);
      const owner = forward(params.service, params.id);
      if (owner === undefined) throw new TenementError(ErrorCodes.NOT_FOUND, `${params.service}:${params.id} has no placement in the fleet`);
      if (owner === deps.self) return deps.move(params.service, params.id, body.to, 'ten move');
      // Asked of another node than the owner: the owner moves it.
      if (!deps.state.node(body.to)) throw new TenementError(ErrorCodes.NOT_FOUND, `unknown fleet node '${body.to}'`);
      return callNode<MoveResult>(deps.peer(owner), '/api/fleet/internal/move', { service: params.service, id: params.id, to: body.to }, CALL_MS);
    },
  });

  const internal = <B>(url: string, summary: string, body: z.ZodType<B>, run: (from: string, body: B) => Promise<unknown>): void => {
    ctx.api.route({
      method: 'POST',
      url,
      summary,
      tags: ['fleet'],
      // No token: the node signature (fleet secret) is checked instead.
      access: 'public',
      body,
      handler: async ({ request, body: parsed }) => run(verify(request as never), parsed),
    });
  };
  internal('/api/fleet/internal/move', 'Fleet-internal: move an instance this node owns (signed by a node)', z.strictObject({ ...names, to: z.string().min(1).max(128) }), (_from, body) =>
    deps.move(body.service, body.id, body.to, 'ten move'),
  );
  internal('/api/fleet/internal/prepare', "Fleet-internal: where a moving instance's DATA_DIR would be on this node (signed)", z.strictObject(names), async (_from, body) => {
    if (!ctx.services.get(body.service)) throw new TenementError(ErrorCodes.NOT_FOUND, `unknown service '${body.service}'`);
    checkId(body.id);
    const dataDir = ctx.paths.instanceDir(body.service, body.id);
    return { dataDir, room: await storageRoom(dataDir, ctx.services.get(body.service)?.limits?.storage) };
  });
  internal(
    '/api/fleet/internal/receive',
    "Fleet-internal: pull a moving instance's archive (signed by its node)",
    z.strictObject({ ...names, token: z.string().regex(/^[A-Za-z0-9_-]{32}$/), images: z.boolean() }),
    (from, body) => deps.receiver.receive(from, body),
  );
  internal('/api/fleet/internal/commit', 'Fleet-internal: start a moved instance here (signed by its former node)', z.strictObject({ ...names, placement: z.unknown(), start: z.boolean() }), (from, body) => deps.receiver.commit(from, body));
  internal('/api/fleet/internal/abort', 'Fleet-internal: forget a move that was given up (signed by its node)', z.strictObject(names), async (from, body) => {
    deps.receiver.abort(from, body.service, body.id);
    return { aborted: true };
  });

  ctx.api.route({
    method: 'GET',
    url: '/api/fleet/internal/archive/:token',
    summary: "Fleet-internal: a moving instance's archive, for the node it moves to (signed)",
    tags: ['fleet'],
    access: 'public',
    params: z.strictObject({ token: z.string().regex(/^[A-Za-z0-9_-]{32}$/) }),
    handler: ({ request, params, reply }) => {
      const from = verify(request as never);
      const entry = deps.outgoing.get(params.token);
      // Once: the archive is packed as it is sent, and only what one pull received is compared.
      if (!entry || entry.to !== from || entry.sent) throw new TenementError(ErrorCodes.NOT_FOUND, 'no such archive for this node');
      const { stream, done } = packStream(entry.sources, deps.maxBytes);
      entry.sent = done;
      reply.header('content-type', 'application/octet-stream');
      return reply.send(stream);
    },
  });
}
