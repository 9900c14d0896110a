/**
 * The config field the snapshots plugin owns (docs/snapshots.md): `hibernate.mode` per service. 'stop' (the
 * default) ends the process when it hibernates, as before; 'suspend' saves it with CRIU and restores it on the
 * next request instead of starting it again.
 */
import { z } from 'zod';

export const snapshotsServiceFields = {
  hibernate: z.strictObject({ mode: z.enum(['stop', 'suspend']).default('stop') }).optional(),
};
