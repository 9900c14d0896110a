import { z } from 'zod';
import { parseDuration } from '../../core/config/units.ts';

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined || ms < 1_000) {
    ctx.addIssue({ code: 'custom', message: `expected a duration of at least 1s like '30m' or '12h', got ${JSON.stringify(value)}` });
    return z.NEVER;
  }
  return ms;
});

const fields = z.strictObject({
  /** false: no `/`, no sessions, no /api/events, no history. */
  enabled: z.boolean().default(true),
  /** A session unused this long is gone. */
  sessionIdle: duration.default(30 * 60_000),
  /** A session is gone this long after sign-in, however used. */
  sessionMax: duration.default(12 * 3_600_000),
  /** All sessions; signing in past it drops the least recently used one. */
  maxSessions: z.number().int().min(1).max(100_000).default(1_000),
  /** Open /api/events streams. */
  maxStreams: z.number().int().min(1).max(10_000).default(64),
  /** Where the built UI is (tests point it elsewhere); default: this plugin's dist/. */
  distDir: z.string().min(1).optional(),
});

/** `pluginOptions: { dashboard: false }` leaves the dashboard out, as `{ enabled: false }` does. */
export const dashboardOptions = z
  .union([z.literal(false), fields])
  .optional()
  .transform((value) => (value === false ? fields.parse({ enabled: false }) : fields.parse(value ?? {})));

export type DashboardOptionsInput = z.input<typeof dashboardOptions>;
export type DashboardOptions = z.output<typeof dashboardOptions>;
