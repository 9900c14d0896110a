import { z } from 'zod';
import { DNS_LABEL } from '../../core/config/schema.ts';

/**
 * A plugin's answers are untrusted: jco checks their types when it lifts them out of the component, these checks
 * add what the types cannot say (a status a client can be sent, a service that exists). Anything else is garbage.
 */

const label = z.string().regex(DNS_LABEL);

const authSchema = z.discriminatedUnion('tag', [
  z.strictObject({ tag: z.literal('allow') }),
  z.strictObject({ tag: z.literal('no-answer') }),
  z.strictObject({
    tag: z.literal('deny'),
    val: z.strictObject({ status: z.number().int().min(400).max(599), message: z.string().max(1024) }),
  }),
]);

export type AuthAnswer = { kind: 'allow' } | { kind: 'no-answer' } | { kind: 'deny'; status: number; message: string };

/** The auth decision, or null when the value is not one. */
export function readAuthAnswer(value: unknown): AuthAnswer | null {
  const parsed = authSchema.safeParse(value);
  if (!parsed.success) return null;
  const answer = parsed.data;
  if (answer.tag === 'deny') return { kind: 'deny', status: answer.val.status, message: answer.val.message };
  return { kind: answer.tag };
}

const routeSchema = z.union([
  z.undefined(),
  z.null(),
  z.strictObject({ service: label, instance: label.optional().nullable() }),
]);

export type RouteAnswer = { service: string; instance: string | null } | null;

/** The route target (null: no answer), or undefined when the value is garbage. */
export function readRouteAnswer(value: unknown): RouteAnswer | undefined {
  const parsed = routeSchema.safeParse(value);
  if (!parsed.success) return undefined;
  const target = parsed.data;
  if (target === undefined || target === null) return null;
  return { service: target.service, instance: target.instance ?? null };
}
