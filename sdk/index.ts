/**
 * What users import: `defineConfig` for tenement.config.ts and `definePlugin` for plugins, with the kernel's
 * types for hooks and instances.
 */
import type { ConfigInput, ServiceInput } from '../core/config/schema.ts';
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
export { TenementError, ErrorCodes, statusOf, type ErrorCode } from '../core/errors.ts';
// TypeScript handlers for isolation: 'wasm' (`ten build`); the helpers themselves live in sdk/wasm.ts.
export type { Request as WasmRequest, Response as WasmResponse, Handler as WasmHandler } from './wasm.ts';

/**
 * Config fields of plugins that are not first-party, for the types of tenement.config.ts (the first-party
 * plugins' fields are in ConfigInput already). A plugin adds its own by declaration merging, next to its
 * `serviceFields`/`settingsFields` (examples/runtime-unshare/index.ts):
 * `declare module 'tenement/sdk' { interface PluginServiceFields { unshare?: {...} } }`.
 */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by declaration merging
export interface PluginServiceFields {}
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by declaration merging
export interface PluginSettingsFields {}

/** What tenement.config.ts holds: the first-party config and the fields plugins registered above. */
export type TenementConfig = Omit<ConfigInput, 'services' | 'settings'> & {
  settings?: NonNullable<ConfigInput['settings']> & PluginSettingsFields;
  services?: Record<string, ServiceInput & PluginServiceFields>;
};

/**
 * Identity function that gives `tenement.config.ts` full type checking and completion: a misspelt or unknown
 * field is a type error, as it is a config error at load.
 */
export function defineConfig(config: TenementConfig): TenementConfig {
  return config;
}

/** Identity function that types a plugin; the kernel validates the manifest again at load. */
export function definePlugin<Options = void>(plugin: PluginDefinition<Options>): PluginDefinition<Options> {
  return plugin;
}
