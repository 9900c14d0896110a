/**
 * The config fields the snapshots plugin owns (docs/snapshots.md): `hibernate.mode` per service. 'stop' (the
 * default) ends the process when it hibernates, as before; 'suspend' saves it with CRIU and restores it on the
 * next request instead of starting it again. `snapshots` bounds the named snapshots (`ten snapshot`) kept per
 * instance: at most `keep` of them and `maxBytes` of compressed archives, oldest deleted first.
 */
import { z } from 'zod';
import { size } from '../../core/config/fields.ts';

export const SNAPSHOT_DEFAULTS = { keep: 5, maxBytes: 2 * 1024 ** 3 } as const;

export const snapshotsServiceFields = {
  hibernate: z.strictObject({ mode: z.enum(['stop', 'suspend']).default('stop') }).optional(),
  snapshots: z
    .strictObject({
      keep: z.number().int('expected a whole number of snapshots').min(1, 'expected at least 1 snapshot').max(1000, 'expected at most 1000 snapshots').default(SNAPSHOT_DEFAULTS.keep),
      maxBytes: size.refine((bytes) => bytes >= 1_000_000, 'expected at least 1MB: a snapshot holds a whole process image').default(SNAPSHOT_DEFAULTS.maxBytes),
    })
    .optional(),
};
