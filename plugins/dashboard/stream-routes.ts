import { z } from 'zod';
import { requireAccess } from '../../core/api/identity.ts';
import { DNS_LABEL } from '../../core/config/names.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { EventHub } from './events.ts';
import { STEP_MS, type HistoryTable } from './history.ts';
import { recheck, requestSession } from './session-auth.ts';
import type { SessionStore } from './sessions.ts';

const instanceParams = z.strictObject({
  service: z.string().regex(DNS_LABEL, 'expected a service name'),
  id: z.string().regex(DNS_LABEL, 'expected an instance id'),
});

/** GET /api/events (the live instance stream) and GET /api/instances/:service/:id/history (the charts). */
export function streamRoutes(ctx: Pick<PluginContext, 'api' | 'instances'>, sessions: SessionStore, hub: EventHub, history: HistoryTable): void {
  ctx.api.route({
    method: 'GET',
    url: '/api/events',
    summary: 'Instance changes as Server-Sent Events: a snapshot, then instance, removed and stats events (tenant-scoped)',
    description: 'See docs/dashboard.md. A keep-alive comment every 15 s; a client too slow to read is disconnected.',
    tags: ['dashboard'],
    access: 'token',
    handler: async ({ identity, request, reply }) => {
      if (hub.full) {
        throw new TenementError(ErrorCodes.RATE_LIMITED, 'too many open event streams; retry later', { retryAfter: 5 });
      }
      const address = request.socket.remoteAddress ?? 'unix';
      const session = requestSession(sessions, request.headers);
      const authorization = request.headers.authorization;
      // The credential is checked again every 15 s: a revoked token or an ended session closes the stream.
      const stillValid = session
        ? async () => (await recheck(ctx.api, session, address)) !== undefined && sessions.use(session.id) !== undefined
        : async () => (await ctx.api.identify({ headers: { authorization }, remoteAddress: address, method: 'GET', url: '/api/events' })) !== undefined;
      reply.hijack();
      const close = await hub.open(reply.raw, identity!, stillValid);
      // A client gone while its snapshot was read has already closed: nothing to remember for it.
      if (session && !reply.raw.destroyed && !reply.raw.writableEnded) {
        session.streams.add(close);
        reply.raw.once('close', () => session.streams.delete(close));
      }
    },
  });

  ctx.api.route({
    method: 'GET',
    url: '/api/instances/:service/:id/history',
    summary: "An instance's last hour in 10 s points: request rate, latency p50/p95/p99 (ms), memory (bytes), CPU (cores)",
    tags: ['dashboard'],
    access: 'token',
    params: instanceParams,
    handler: async ({ identity, params }) => {
      requireAccess(identity, params.service, params.id);
      const view = ctx.instances.get(params.service, params.id);
      if (!view) throw new TenementError(ErrorCodes.UNKNOWN_INSTANCE, `unknown instance '${params.service}:${params.id}'`);
      const own = history.of(view.key);
      // A fresh reading, so a page opened just after a start shows memory at once rather than in 10 s.
      if (view.state === 'running' && view.handle) {
        const stats = await view.handle.stats().catch(() => null);
        if (stats) own.sample(stats.memoryBytes ?? null, stats.cpuSeconds ?? null, view.epoch);
      }
      return { step: STEP_MS / 1000, points: own.points() };
    },
  });
}
