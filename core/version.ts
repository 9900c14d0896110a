/**
 * The kernel's own version, alone so `ten --version` need not load the plugin loader (semver, zod) to print it.
 * core/plugin.ts re-exports it.
 */

/** The kernel's own version; plugins declare the range they work with in `kernel`. */
export const KERNEL_VERSION = '1.0.0';
