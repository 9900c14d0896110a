import { z } from 'zod';
import { parseDuration } from '../../core/config/units.ts';
import { parsePluginOptions } from '../../core/plugin-options.ts';

/** What a config may pass as `pluginOptions.storage` (durations like '5s', '10m', or milliseconds). */
export interface StorageOptions {
  /** How often each mounted instance's usage is read for the warning event (default '5s'; statfs costs ~5 µs). */
  pollInterval?: string | number;
  /** How often gc runs on its own (default '10m'); false: only `ten gc`. */
  gcInterval?: string | number | false;
}

const duration = (what: string) =>
  z.union([z.string(), z.number()]).transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined || ms < 10) {
      ctx.addIssue({ code: 'custom', message: `${what}: expected a duration like '5s' or '10m' (at least 10ms), got ${JSON.stringify(value)}` });
      return z.NEVER;
    }
    return ms;
  });

const schema = z
  .strictObject({
    pollInterval: duration('pollInterval').default(5_000),
    gcInterval: z.union([z.literal(false), duration('gcInterval')]).default(600_000),
  })
  .default({ pollInterval: 5_000, gcInterval: 600_000 });

export function resolveOptions(raw: StorageOptions | undefined): { pollMs: number; gcMs: number | false } {
  const options = parsePluginOptions('storage', schema, raw);
  return { pollMs: options.pollInterval, gcMs: options.gcInterval };
}
