import path from 'node:path';
import { loadConfig, type SettingsOverrides } from '../core/config/loader.ts';
import { startCpuPinning } from '../core/dataplane/cpu-pin.ts';
import { Kernel } from '../core/kernel.ts';
import { createLogger } from '../core/logger.ts';
import { CONFIG_PLUGINS, checkReloadNeeds, loadDefaultPlugins } from './serve-plugins.ts';
import { compactHeap, releaseOptimizers, releaseSizeHold } from './startup-tiering.ts';

export interface ServeOptions {
  config?: string;
  port?: string;
  domain?: string;
  dataDir?: string;
  listen?: string;
  /** Comma-separated NATS server URLs: join a fleet (docs/fleet.md). */
  fleet?: string;
}

/** `ten serve`: runs until SIGINT or SIGTERM, then stops every instance gracefully; SIGHUP reloads the config. */
export async function serve(options: ServeOptions): Promise<void> {
  const overrides: SettingsOverrides = {};
  if (options.port !== undefined) overrides.port = Number(options.port);
  if (options.domain !== undefined) overrides.domain = options.domain;
  if (options.listen !== undefined) overrides.listen = options.listen;
  if (options.fleet !== undefined) overrides.fleet = { servers: options.fleet.split(',').map((url) => url.trim()).filter((url) => url !== '') };
  const dataDir = options.dataDir ?? process.env.TENEMENT_DATA_DIR;
  if (dataDir !== undefined) overrides.dataDir = path.resolve(dataDir);
  // Modules loaded: from here on worker threads may be made (tsx's loader thread for a .ts config, the wasm pool's
  // in plugins' setup), which must not start under --optimize-for-size (cli/startup-tiering.ts).
  releaseSizeHold();
  // Validated against the fields and tiers of the plugins this server loads (the defaults and the config's own).
  const config = await loadConfig({ file: options.config, overrides, plugins: CONFIG_PLUGINS });
  const log = createLogger();
  // The default plugins this config asks for (cli/serve-plugins.ts): a server without fleet, tracing or a wasm
  // service never loads their code.
  const defaults = await loadDefaultPlugins(config);
  // A SIGHUP while starting (systemctl reload too early) would end the process by default: until the reload
  // handler is in place it is logged and ignored.
  const early = (): void => void log.warn('SIGHUP during start-up: ignored, the config just loaded is the current one');
  process.on('SIGHUP', early);
  // The config file again, with the same overrides and plugins: for SIGHUP and POST /api/reload.
  // A reloaded config whose services need a default plugin not loaded at start is refused (checkReloadNeeds).
  const reloadFrom = async () => {
    const next = await loadConfig({ file: config.source.path ?? options.config, overrides, plugins: CONFIG_PLUGINS });
    checkReloadNeeds(defaults.names, kernel.config, next);
    return next;
  };
  const { reloadConfig, reloadOnSighup, reloadRoutePlugin } = await import('./reload.ts');
  const reloadRoute = reloadRoutePlugin(() => reloadConfig(kernel, reloadFrom, log), () => kernel.config.source.path);
  const kernel: Kernel = new Kernel({ config, plugins: [...defaults.entries, reloadRoute], logger: log });

  let stopping: Promise<void> | null = null;
  const shutdown = (signal: string): void => {
    if (stopping) {
      log.warn('second signal: exiting without waiting for instances');
      process.exit(1);
    }
    log.info({ signal }, 'shutting down: stopping instances');
    stopping = kernel.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        log.error({ err: String(error) }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  containFaults(kernel);

  try {
    await kernel.start();
  } catch (error) {
    await kernel.stop().catch(() => undefined);
    throw error;
  }
  // A busy proxy's event loop stays on its CPU (settings.proxy.pin; core/dataplane/cpu-pin.ts). Here, not in
  // the kernel: a test's in-process kernel must not pin its test runner's thread.
  if (config.settings.proxy.pin === 'busy') startCpuPinning({ log });
  // SIGHUP: services added, removed and changed are applied (cli/reload.ts).
  reloadOnSighup(kernel, reloadFrom, log);
  process.off('SIGHUP', early);
  const settings = config.settings;
  const context = await recordServer(kernel, config, log);
  process.stderr.write(
    `tenement serving ${Object.keys(config.services).length} service(s) on ${kernel.url}\n` +
      `  tenants: http://{id}.{service}.${settings.domain}:${kernel.url.split(':').pop()}/\n` +
      `  config:  ${config.source.path}\n  data:    ${settings.dataDir}\n` +
      (context ? `  context: ${context} (ten ps from any folder reaches this server)\n` : ''),
  );
  // Started, and the last start-up module loaded (recordServer's): what runs hot from now on (the proxy) is optimized
  // as usual. Released before those imports, the module loader's functions, hot from start-up, were optimized by
  // them: ~3.5 MB more RSS idle, TurboFan's code paged in (bench/footprint.ts).
  releaseOptimizers();
  // And what V8's memory reducer would free some 10 s from now, freed now (2-3 MB idle: bench/footprint.ts).
  compactHeap();
}

/**
 * Records where this server's API is and where its admin token lives in the user's context file, as the current
 * context (cli/context-file.ts). A file that cannot be written (or is refused as unsafe) costs a warning, not
 * the server.
 */
async function recordServer(kernel: Kernel, config: Awaited<ReturnType<typeof loadConfig>>, log: ReturnType<typeof createLogger>): Promise<string | null> {
  const { recordContext } = await import('./context-file.ts');
  const { apiSocketPath } = await import('../core/api/socket-path.ts');
  const { dataDir, api } = config.settings;
  const socket = apiSocketPath(dataDir, api);
  try {
    return recordContext({ socket, server: api.tcp ? kernel.url : null, tokenFile: path.join(dataDir, 'admin.token'), config: config.source.path, dataDir });
  } catch (error) {
    log.warn({ err: error instanceof Error ? error.message : String(error) }, 'not recorded in the context file: ten elsewhere will not find this server');
    return null;
  }
}

/**
 * The last line of defence. Known tenant-triggered paths (spawn errors, EMFILE, plugin taps) are contained
 * where they happen; whatever still reaches the process is logged with its stack, counted in
 * tenement_internal_errors_total{where="uncaughtException"|"unhandledRejection"}, and the server keeps
 * serving: its state is kept per instance, and ending every tenant's service because of one error in one
 * request or instance is the worse failure. The counter should stay at 0; alert on it.
 */
function containFaults(kernel: Kernel): void {
  process.on('unhandledRejection', (reason: unknown) => kernel.faults.record('unhandledRejection', reason));
  process.on('uncaughtException', (error: Error, origin: string) => kernel.faults.record('uncaughtException', error, { origin }));
}
