import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ErrorCodes, TenementError, errorMessage } from '../../core/errors.ts';
import { prepareComponent, type ComponentArtifact } from '../../core/wasm/component/index.ts';
import { prepareWasmtimeComponent } from '../../core/wasm/wasmtime/component/compile.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';
import { builtPlugin } from './build.ts';
import type { WasmPluginConfig } from './options.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import '../../core/wasm/provide-pool.ts';
import { PluginMetrics, PluginRunner, type PluginPool } from './runner.ts';
import { tapEvents, tapTenantTraffic } from './taps.ts';

/** The world's exports as the component lists them, by config hook name. */
const EXPORT_OF = { auth: 'auth', route: 'route', 'on-event': 'on-event' } as const;

/** The plugin world's own types, the log, the clock and randomness; nothing that reaches the host's files, environment or network. */
const ALLOWED_IMPORT = /^tenement:(plugin\/[a-z-]+|http\/(log|runtime))(@[0-9.]+)?$/;

/** A component is built for the plugin world when it exports what its config says it implements, and imports only the log and runtime. */
function checkArtifact(plugin: WasmPluginConfig, artifact: ComponentArtifact, index: number): void {
  const where = `pluginOptions.wasm-plugins.plugins.${index} ('${plugin.name}', ${plugin.path})`;
  // The world imports only log and runtime: anything else (WASI, tenant data) would be a capability plugins are not granted.
  const refused = artifact.imports.filter((name) => !ALLOWED_IMPORT.test(name));
  if (refused.length > 0) {
    throw new TenementError(
      ErrorCodes.CONFIG_INVALID,
      `${where}: the component imports ${refused.join(', ')}; plugins may import only tenement:http/log and runtime (no file system, environment or network)`,
    );
  }
  const exported = new Set(artifact.exports.map((name) => name.replace(/@.*$/, '')));
  const missing = plugin.hooks.filter((hook) => !exported.has(EXPORT_OF[hook]) && !exported.has(hook.replace(/-(.)/g, (_m, c: string) => c.toUpperCase())));
  if (missing.length > 0) {
    throw new TenementError(
      ErrorCodes.CONFIG_INVALID,
      `${where}: the component does not export ${missing.join(', ')} (it exports ${artifact.exports.join(', ') || 'nothing'}); ` +
        "build it for the 'plugin' world of sdk/wit/plugin.wit (`ten plugin add source.ts` does)",
    );
  }
}

/** The component made ready for the plugin's engine; wasmtime falls back to V8 (told to `fallBack`) where its library is missing. */
async function prepareOn(plugin: WasmPluginConfig, file: string, cacheDir: string, fallBack: (reason: string) => void): Promise<ComponentArtifact> {
  if (plugin.engine === 'wasmtime') {
    const status = wasmtimeStatus();
    if (status.usable) {
      const bytes = await readFile(file);
      return prepareWasmtimeComponent(bytes, createHash('sha256').update(bytes).digest('hex'), cacheDir, plugin.memoryPages);
    }
    fallBack(`${ErrorCodes.WASMTIME_UNAVAILABLE}: ${status.reason}`);
  }
  return prepareComponent(file, { cacheDir, memoryPages: plugin.memoryPages });
}

/**
 * The world's records live in a types-only interface, which the component lists as an import though it has
 * nothing to link (jco's glue never reads it); the pool's instantiation links only what is listed, so it is left out.
 */
function withoutTypeImports(artifact: ComponentArtifact): ComponentArtifact {
  return { ...artifact, imports: artifact.imports.filter((name) => !/^tenement:plugin\/types(@|$)/.test(name)) };
}

/** The configured plugins compiled, warmed up and tapped in (index.ts imports this only when some are configured). */
export async function loadWasmPlugins(ctx: PluginContext, plugins: readonly WasmPluginConfig[], runners: PluginRunner[]): Promise<void> {

  const metrics = new PluginMetrics();
  ctx.hooks.metrics.tap((registry) => metrics.register(registry));
  const cacheDir = path.join(ctx.paths.dataDir, 'wasm-cache');
  const pool: PluginPool = ctx.wasmPool();
  for (const [index, plugin] of plugins.entries()) {
    if (!existsSync(plugin.path)) {
      throw new TenementError(ErrorCodes.CONFIG_INVALID, `pluginOptions.wasm-plugins.plugins.${index}.path: ${plugin.path} does not exist`);
    }
    let component = plugin.path;
    let artifact: ComponentArtifact;
    try {
      if (!component.endsWith('.wasm')) component = await builtPlugin(component, path.join(cacheDir, 'plugin-builds'));
      artifact = await prepareOn(plugin, component, cacheDir, (reason) =>
        ctx.log.warn({ wasmPlugin: plugin.name, engine: 'wasmtime', reason }, 'the plugin asked for wasmtime: running it on V8 instead'),
      );
    } catch (error) {
      throw new TenementError(
        ErrorCodes.CONFIG_INVALID,
        `pluginOptions.wasm-plugins.plugins.${index}.path: cannot load ${plugin.path} as a plugin component: ${errorMessage(error)}`,
        { cause: error },
      );
    }
    checkArtifact(plugin, artifact, index);
    artifact = withoutTypeImports(artifact);
    runners.push(new PluginRunner(plugin, artifact, pool, metrics, ctx.log));
    ctx.log.info({ wasmPlugin: plugin.name, hooks: plugin.hooks, hash: artifact.hash }, 'wasm plugin loaded');
  }
  // Registered after the pool's own closer, so it runs before it (closers run last registered first).
  ctx.onClose(() => {
    for (const runner of runners) runner.close();
  });
  await Promise.all(runners.map((runner) => runner.warmUp()));
  tapTenantTraffic(ctx, runners);
  tapEvents(ctx.hooks, runners);
}
