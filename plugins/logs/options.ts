import { z } from 'zod';
import { parseDuration, parseSize } from '../../core/config/units.ts';
import { ErrorCodes, TenementError } from '../../core/errors.ts';

/** What a config may pass as `[logs, { ... }]`; sizes like '256MB', durations like '7d'. */
export interface LogsOptions {
  /** Total budget for stored lines (default '256MB'); false: no total limit. */
  maxBytes?: string | number | false;
  /** Lines older than this are deleted (default '7d'); false: keep regardless of age. */
  maxAge?: string | number | false;
  /** Budget per instance (default '32MB'), so one chatty tenant cannot push out everyone else's lines. */
  perInstanceMaxBytes?: string | number | false;
  /** Longest a line waits in memory before it is written (default '100ms'). */
  flushInterval?: string | number;
  /** Write at once when this many lines are waiting (default 1000). */
  flushLines?: number;
  /** How often retention runs on its own (default: maxAge / 2, between 1s and 30s). */
  retentionInterval?: string | number;
  /** Comment sent on idle live streams so proxies keep them open (default '15s'). */
  keepAlive?: string | number;
}

export interface ResolvedLogsOptions {
  maxBytes: number;
  maxAgeMs: number;
  perInstanceMaxBytes: number;
  flushMs: number;
  flushLines: number;
  retentionMs: number;
  keepAliveMs: number;
}

const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a size like '20KB', '256MB' or a number of bytes, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return bytes;
});

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a duration like '500ms', '30s', '7d' or a number of milliseconds, got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return ms;
});

const orOff = <T extends z.ZodType<number>>(schema: T) => z.union([z.literal(false), schema]).transform((v) => (v === false ? 0 : v));

const schema = z.strictObject({
  maxBytes: orOff(size).default(256_000_000),
  maxAge: orOff(duration).default(7 * 86_400_000),
  perInstanceMaxBytes: orOff(size).default(32_000_000),
  flushInterval: duration.default(100),
  flushLines: z.number().int().min(1).max(100_000).default(1_000),
  retentionInterval: duration.optional(),
  keepAlive: duration.default(15_000),
});

/** Validates the plugin options; a mistake stops start-up with every bad field named. */
export function resolveOptions(input: unknown): ResolvedLogsOptions {
  const result = schema.safeParse(input ?? {});
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${['logs', ...i.path.map(String)].join('.')}: ${i.message}`).join('; ');
    throw new TenementError(ErrorCodes.CONFIG_INVALID, `invalid options for the logs plugin: ${problems}`);
  }
  const o = result.data;
  const retentionMs = o.retentionInterval ?? Math.min(30_000, Math.max(1_000, o.maxAge > 0 ? Math.floor(o.maxAge / 2) : 30_000));
  return {
    maxBytes: o.maxBytes,
    maxAgeMs: o.maxAge,
    perInstanceMaxBytes: o.perInstanceMaxBytes,
    flushMs: Math.max(1, o.flushInterval),
    flushLines: o.flushLines,
    retentionMs: Math.max(100, retentionMs),
    keepAliveMs: Math.max(100, o.keepAlive),
  };
}
