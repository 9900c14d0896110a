import type { z } from 'zod';
import { ErrorCodes, TenementError } from '../errors.ts';

/** Parses request input with zod; a failure is a 400 naming every bad field by its path (`body.weight`). */
export function parseInput<T>(schema: z.ZodType<T>, value: unknown, where: 'params' | 'query' | 'body'): T {
  const result = schema.safeParse(value ?? (where === 'body' ? undefined : {}));
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const path = [where, ...issue.path.map(String)].join('.');
    return `${path}: ${issue.message}`;
  });
  throw new TenementError(ErrorCodes.BAD_REQUEST, problems.join('; '));
}
