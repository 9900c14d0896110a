import { z } from 'zod';
import { DNS_LABEL } from '../../core/config/schema.ts';
import { parseDuration } from '../../core/config/units.ts';
import type { InstanceState } from '../../core/types.ts';

/** Service names, instance ids and versions become parts of host names, so each must be a DNS label. */
export const dnsLabel = (what: string) =>
  z.string().regex(DNS_LABEL, `expected a DNS label for ${what}: lowercase letters, digits and '-', 1 to 63 characters`);

const STATES = [
  'created',
  'starting',
  'running',
  'restarting',
  'stopping',
  'stopped',
  'hibernated',
  'waking',
  'failed',
] as const satisfies readonly InstanceState[];

export const instanceParams = z.strictObject({ service: dnsLabel('the service'), id: dnsLabel('the instance id') });
export type InstanceParams = z.infer<typeof instanceParams>;

export const listQuery = z.strictObject({
  service: dnsLabel('the service').optional(),
  state: z.enum(STATES).optional(),
});

export const weight = z.number().int().min(0).max(100);

export const weightBody = z.strictObject({ weight });

/** '30s', '2m', or milliseconds, as in the config. */
const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a duration like '500ms', '30s', '5m' or a number of milliseconds, got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return ms;
});

export const deployBody = z.strictObject({
  service: dnsLabel('the service'),
  version: dnsLabel('the version (it becomes the instance id)'),
  weight: weight.optional(),
  timeout: duration.optional(),
});
export type DeployBody = z.output<typeof deployBody>;

export const routeBody = z.strictObject({
  service: dnsLabel('the service'),
  from: dnsLabel('the instance losing traffic'),
  to: dnsLabel('the instance taking traffic'),
});
