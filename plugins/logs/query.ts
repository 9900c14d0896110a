import { z } from 'zod';
import { requireAccess } from '../../core/api/identity.ts';
import { parseDuration } from '../../core/config/units.ts';
import { DNS_LABEL } from '../../core/config/schema.ts';
import type { Identity } from '../../core/types.ts';
import type { LogFilter } from './sql.ts';

export const MAX_LIMIT = 10_000;

/**
 * A point in time from a query string: epoch milliseconds ('1718000000000'), a duration meaning that long ago
 * ('90s', '5m', '2h', '7d'), or anything Date.parse reads (ISO 8601: '2024-06-10T08:00:00Z').
 */
export function parseTime(text: string, now: number): number | undefined {
  const value = text.trim();
  if (/^\d+$/.test(value)) return Number(value);
  const ago = parseDuration(value);
  if (ago !== undefined) return now - ago;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? undefined : parsed;
}

const time = z.string().transform((value, ctx) => {
  const at = parseTime(value, Date.now());
  if (at === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected epoch milliseconds, an ISO timestamp or a duration ago like '5m', got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return at;
});

const label = (what: string) => z.string().regex(DNS_LABEL, `expected a ${what}: a DNS label`);

const filters = {
  service: label('service name').optional(),
  id: label('instance id').optional(),
  stream: z.enum(['stdout', 'stderr']).optional(),
  /** Blank is the same as absent. */
  search: z
    .string()
    .max(1_000)
    .transform((s) => (s.trim() === '' ? undefined : s))
    .optional(),
};

export const logsQuery = z.strictObject({
  ...filters,
  since: time.optional(),
  until: time.optional(),
  limit: z.coerce.number().int().min(1).max(MAX_LIMIT).default(100),
});

/** The live stream takes the same filters; `since` replays stored lines first, there is no `until` or `limit`. */
export const streamQuery = z.strictObject({ ...filters, since: time.optional() });

export type LogsQuery = z.infer<typeof logsQuery>;
export type StreamQuery = z.infer<typeof streamQuery>;

/**
 * The filter a caller may run: a tenant sees its own id only (every service), and naming another tenant's id
 * is answered like an instance that does not exist (404), never with an empty list that would confirm it.
 */
export function scopedFilter(identity: Identity | null, query: Omit<LogFilter, 'search'> & { search?: string | undefined }): LogFilter {
  const filter: LogFilter = {};
  if (query.service !== undefined) filter.service = query.service;
  if (query.id !== undefined) filter.id = query.id;
  if (query.stream !== undefined) filter.stream = query.stream;
  if (query.since !== undefined) filter.since = query.since;
  if (query.until !== undefined) filter.until = query.until;
  if (query.search !== undefined) filter.search = query.search;
  if (identity?.kind === 'tenant') {
    if (filter.id !== undefined) requireAccess(identity, filter.service ?? '*', filter.id);
    filter.id = identity.tenant;
  }
  return filter;
}
