/**
 * The config fields the storage plugin owns (docs/storage.md): `limits.storage` and `limits.storageWarn`,
 * merged into the service's `limits` object when the plugin is loaded (core/config/compose.ts).
 */
import { z } from 'zod';
import { size } from '../../core/config/fields.ts';

/** Smallest `limits.storage`: below it an ext4 image is mostly journal and inode tables. */
export const STORAGE_MIN_BYTES = 16 * 1024 * 1024;

export const storageLimitFields = {
  /**
   * Size of the instance's DATA_DIR: a hard limit (ENOSPC past it), enforced by a loop-mounted ext4 image of
   * this size. ext4's own metadata takes part of it (about 12% at 64MiB).
   */
  storage: size
    .refine((bytes) => bytes >= STORAGE_MIN_BYTES, `expected at least 16MiB: a smaller ext4 image is mostly its own metadata`)
    .optional(),
  /** Share of the storage limit in use at which a 'storage-warning' event is emitted (once per crossing). */
  storageWarn: z.number().gt(0, 'expected a share of the limit above 0, like 0.9').max(1, 'expected a share of the limit up to 1, like 0.9').default(0.9),
};

export const storageServiceFields = {
  /** Merged with the other plugins' `limits` fields (cgroups' memory, cpu, pids). */
  limits: z.strictObject(storageLimitFields).optional(),
};
