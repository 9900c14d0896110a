/**
 * What users import: `defineConfig` for tenement.config.ts and `definePlugin` for plugins, with the kernel's
 * types for hooks and instances.
 */
import type { ConfigInput } from '../core/config/schema.ts';
import type { PluginDefinition } from '../core/plugin.ts';

export type { ConfigInput, ServiceInput, Tier } from '../core/config/schema.ts';
export type { PluginDefinition, PluginEntry } from '../core/plugin.ts';
export type { KernelHooks } from '../core/hooks.ts';
// What a trusted plugin's setup(ctx) receives (docs/architecture.md#the-plugin-context).
export type {
  PluginContext,
  PluginHooks,
  PluginHook,
  PluginHookMap,
  TapOptions,
  InstanceDirectory,
  Lifecycle,
  ServiceDirectory,
  PluginStore,
  TierDirectory,
} from '../core/plugin-context.ts';
export type { Instance } from '../core/instance.ts';
export type { TierTraits } from '../core/tier-traits.ts';
export type * from '../core/types.ts';
export { TenementError, ErrorCodes } from '../core/errors.ts';
// TypeScript handlers for isolation: 'wasm' (`ten build`); the helpers themselves live in sdk/wasm.ts.
export type { Request as WasmRequest, Response as WasmResponse, Handler as WasmHandler } from './wasm.ts';

/** Identity function that gives `tenement.config.ts` full type checking and completion. */
export function defineConfig<const T extends ConfigInput>(config: T): T {
  return config;
}

/** Identity function that types a plugin; the kernel validates the manifest again at load. */
export function definePlugin<Options = void>(plugin: PluginDefinition<Options>): PluginDefinition<Options> {
  return plugin;
}
