import { definePlugin } from '../../sdk/index.ts';
import { pluginsRoute } from './api.ts';
import { parseWasmPluginsOptions, type WasmPluginsOptions } from './options.ts';
import type { PluginRunner } from './runner.ts';

export type { WasmPluginsOptions };

/** The compiler, the wasm pool and the engines: imported only when some plugin is configured (an idle server's RSS). */
const loadPlugins = () => import('./load.ts');

/**
 * Sandboxed user plugins: WebAssembly components of the `plugin` world (sdk/wit/plugin.wit), listed in
 * `pluginOptions['wasm-plugins'].plugins`. Each is compiled once (cached by content hash), and called in the
 * shared wasm pool under its deadline on the hooks its entry lists: `auth` and `route` on tenant traffic (taps on
 * the kernel's `route` hook, ahead of the router), `on-event` on every lifecycle event. A plugin that traps,
 * times out or answers garbage counts as no answer (or a 503 for a failClosed `auth`); the host keeps serving.
 * Also serves GET /api/plugins, the list of loaded plugins and their hooks. See docs/plugins.md.
 */
export default definePlugin<WasmPluginsOptions | undefined>({
  name: 'wasm-plugins',
  version: '1.0.0',
  kernel: '^1',
  // Its `route` taps must precede the router's (they also carry a lower stage).
  enforce: 'pre',
  async setup(ctx) {
    const plugins = parseWasmPluginsOptions(ctx.config, ctx.paths.configDir);
    const runners: PluginRunner[] = [];
    pluginsRoute(ctx, runners);
    if (plugins.length === 0) return;
    await (await loadPlugins()).loadWasmPlugins(ctx, plugins, runners);
  },
});
