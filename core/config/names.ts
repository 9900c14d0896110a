/**
 * Naming rules with no dependencies, so the CLI can check a `service:id` argument without loading the config
 * schema (and zod) behind it. core/config/schema.ts re-exports them.
 */

/** Service names and instance ids are DNS labels: they become parts of a host name. */
export const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Plugin names (a plugin's manifest, and the keys of pluginOptions): npm-like, lowercase. */
export const PLUGIN_NAME = /^[a-z0-9@][a-z0-9@/._-]*$/;
