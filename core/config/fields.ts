/**
 * Field types shared by the core config schema and the fragments plugins contribute to it (durations, sizes).
 * No other config module is imported here, so a plugin's schema.ts and core/config/schema.ts can both use them.
 */
import { z } from 'zod';
import { parseDuration, parseSize } from './units.ts';

/** '500ms', '30s', '5m', '1h' or a number of milliseconds; output: milliseconds. */
export const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration like '500ms', '30s', '5m', '1h' or a number of milliseconds, got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return ms;
});

/** '512KB', '256MB', '1GiB' or a number of bytes; output: bytes. */
export const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a size like '512KB', '256MB', '1GiB' or a number of bytes, got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return bytes;
});
