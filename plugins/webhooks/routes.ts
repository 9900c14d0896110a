/**
 * `GET /api/alerts`: deliveries in the outbox, newest first, with their state, attempts, last status or error
 * and next attempt. Admin tokens only: deliveries go to the operator's receivers (their errors describe the
 * operator's endpoints) and metric alerts may concern several tenants; a tenant token gets 403.
 */
import { z } from 'zod';
import type { PluginContext } from '../../core/plugin-context.ts';
import type { Outbox, OutboxRow } from './outbox.ts';

const alertsQuery = z.strictObject({
  state: z.enum(['pending', 'delivered', 'failed']).optional(),
  webhook: z.string().min(1).max(63).optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  /** Page: deliveries with an id below this one (the `next` of the previous page). */
  before: z.coerce.number().int().min(1).optional(),
});

const iso = (at: number | null): string | null => (at === null ? null : new Date(at).toISOString());

/** What the API shows of a row: never the body's URL or secret (the body itself is what the receiver got). */
function view(row: OutboxRow) {
  return {
    id: row.id,
    delivery: row.delivery,
    alert: row.alert,
    webhook: row.webhook,
    kind: row.kind,
    rule: row.rule,
    service: row.service,
    instance: row.instance,
    summary: row.summary,
    state: row.state,
    attempts: row.attempts,
    lastStatus: row.lastStatus,
    lastError: row.lastError,
    createdAt: iso(row.createdAt),
    lastAttemptAt: iso(row.lastAt),
    nextAttemptAt: row.state === 'pending' ? iso(row.nextAt) : null,
    doneAt: iso(row.doneAt),
  };
}

export type DeliveryView = ReturnType<typeof view>;

export function registerRoutes(api: PluginContext['api'], outbox: Outbox): void {
  api.route({
    method: 'GET',
    url: '/api/alerts',
    summary: 'Alert deliveries to webhooks, newest first: state (pending, delivered, failed), attempts, last status or error, next attempt',
    description: 'Filters: state, webhook; limit (1-1000, default 100) and before (an id) to page. Admin tokens only.',
    tags: ['alerts'],
    access: 'admin',
    query: alertsQuery,
    handler: ({ query }) => {
      const rows = outbox.list(query);
      const last = rows.at(-1);
      return {
        deliveries: rows.map(view),
        pending: outbox.pendingCount(),
        next: rows.length === query.limit && last ? last.id : null,
      };
    },
  });
}
