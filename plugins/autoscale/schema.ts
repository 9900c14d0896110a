/**
 * The config fields the autoscale plugin owns (docs/autoscale.md): a service's `scale` (opt-in, per service) and
 * `settings.autoscale` (the host's ceiling on what every service's replicas may take together). Zod fields and
 * nothing else: core reads this file to compose the config schema (core/config/first-party.ts).
 */
import { z } from 'zod';
import { duration, size } from '../../core/config/fields.ts';

/** Hard bounds whatever the config says: a ring of samples per service and a sane replica count. */
export const MAX_WINDOW_MS = 3_600_000;
export const MAX_REPLICAS_CEILING = 1_000;

const windowOf = (what: string, min: number) =>
  duration.pipe(
    z
      .number()
      .min(min, `expected ${what} of at least ${min} ms`)
      .max(MAX_WINDOW_MS, `expected ${what} of at most 1h`),
  );

const scale = z
  .strictObject({
    /** Replicas kept whatever the load; 0 lets the last one hibernate (its idleTimeout). */
    min: z.number({ error: 'expected min: a whole number of replicas' }).int().min(0).max(MAX_REPLICAS_CEILING).default(1),
    max: z.number({ error: 'expected max: a whole number of replicas' }).int().min(1).max(MAX_REPLICAS_CEILING).default(10),
    /** What one replica should carry: requests in flight (concurrency) or requests per second (rps). */
    target: z.number({ error: 'expected target: a number above 0' }).gt(0, 'expected target above 0').max(1_000_000),
    metric: z.enum(['concurrency', 'rps'], { error: "expected metric 'concurrency' (requests in flight) or 'rps' (requests per second)" }).default('concurrency'),
    /** The stable window: its average decides the count. */
    window: windowOf('a window', 2_000).default(60_000),
    /** The panic window (shorter): a burst seen over it scales up at once. */
    panicWindow: windowOf('a panicWindow', 1_000).default(6_000),
    /** How long the load must have wanted fewer replicas before any is drained. */
    scaleDownDelay: duration.pipe(z.number().max(MAX_WINDOW_MS, 'expected a scaleDownDelay of at most 1h')).default(30_000),
  })
  .superRefine((value, ctx) => {
    if (value.min > value.max) ctx.addIssue({ code: 'custom', path: ['min'], message: `expected min (${value.min}) <= max (${value.max})` });
    if (value.panicWindow > value.window) {
      ctx.addIssue({ code: 'custom', path: ['panicWindow'], message: `expected panicWindow (${value.panicWindow} ms) <= window (${value.window} ms)` });
    }
  })
  .optional();

export const autoscaleServiceFields = {
  /** Autoscaling of `{service}.{domain}` (docs/autoscale.md): replicas follow the load between min and max. */
  scale,
};

const autoscaleSettings = z
  .strictObject({
    /** Replicas the autoscaler may run at once on this host, every service together. */
    maxReplicas: z.number({ error: 'expected maxReplicas: a whole number' }).int().min(0).max(MAX_REPLICAS_CEILING).default(32),
    /** Memory every replica together may take (each counted at its limits.memory, else its measured RSS). */
    maxMemory: size.optional(),
  })
  .default({ maxReplicas: 32 });

export const autoscaleSettingsFields = {
  /** The host's ceiling on autoscaled replicas (docs/autoscale.md#ceiling). */
  autoscale: autoscaleSettings,
};

export type ScaleConfig = NonNullable<z.output<typeof scale>>;
export type AutoscaleSettings = z.output<typeof autoscaleSettings>;
