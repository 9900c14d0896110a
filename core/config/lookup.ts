import type { ServiceConfig } from './schema.ts';

/**
 * Names that come from outside (a Host header, an API path, a CLI argument, a config key) are data: looked up
 * as own keys only, so `constructor`, `toString` or `__proto__` never resolve to Object.prototype members.
 */
export function ownValue<T>(record: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(record, key) ? record[key] : undefined;
}

/** The config of the service named `name`, or undefined when the config defines no such service. */
export function serviceConfig(config: { readonly services: Readonly<Record<string, ServiceConfig>> }, name: string): ServiceConfig | undefined {
  return ownValue(config.services, name);
}
