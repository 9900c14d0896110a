import type { z } from 'zod';
import { ErrorCodes, TenementError } from './errors.ts';

/**
 * A plugin's options, checked against its schema at start-up: TNM_ERR_CONFIG_INVALID naming the plugin and every
 * bad field (`metrics options: public: expected boolean`), so a typo stops `ten serve` instead of being ignored.
 */
export function parsePluginOptions<S extends z.ZodType>(plugin: string, schema: S, raw: unknown): z.output<S> {
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`).join('; ');
  throw new TenementError(ErrorCodes.CONFIG_INVALID, `${plugin} options: ${problems}`);
}
