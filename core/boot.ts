import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FIRST_PARTY } from './config/first-party.ts';
import { resolveConfig } from './config/loader.ts';
import type { ConfigInput } from './config/schema.ts';
import { Kernel } from './kernel.ts';
import { createLogger, type Logger } from './logger.ts';
import type { PluginEntry } from './plugin.ts';

export interface BootedKernel extends Kernel {
  /** Stops the kernel and removes the temporary data directory it made, if it made one. */
  close(): Promise<void>;
}

export interface BootOptions {
  plugins: readonly PluginEntry[];
  /** A config as written in tenement.config.ts; `settings.port` defaults to 0 (a free port). */
  config?: ConfigInput;
  /** Resolve relative paths (cwd of services) against this directory (default: the process's cwd). */
  dir?: string;
  /** Start it (default true); a failed start closes it before the error is thrown. */
  start?: boolean;
  /** Default: the level in TENEMENT_LOG_LEVEL, else silent. */
  logger?: Logger;
  /** Prefix of the temporary data directory made when the config names none. */
  tempPrefix?: string;
}

/**
 * A kernel with exactly the given plugins, booted from an in-memory config rather than a config file: on a free
 * port, in a fresh temporary data directory unless the config names one. For tools that need a short-lived
 * kernel of their own (`ten doctor` checks each tier with one) and, through core/test-kernel.ts, for tests.
 */
export async function bootKernel(options: BootOptions): Promise<BootedKernel> {
  const config = options.config ?? {};
  const ownDataDir = config.settings?.dataDir === undefined;
  const dataDir = config.settings?.dataDir ?? mkdtempSync(path.join(os.tmpdir(), options.tempPrefix ?? 'tenement-'));
  let kernel: BootedKernel;
  try {
    const resolved = resolveConfig(
      { ...config, settings: { port: 0, ...config.settings, dataDir } },
      { path: null, dir: options.dir ?? process.cwd() },
      {},
      // The first-party fields and tiers are accepted even when a kernel loads a few of their plugins (a tier
      // without its runtime then fails at start with TNM_ERR_TIER_UNAVAILABLE), plus those of the given plugins.
      [...FIRST_PARTY, ...options.plugins],
    );
    kernel = new Kernel({
      config: resolved,
      plugins: options.plugins,
      logger: options.logger ?? createLogger(process.env.TENEMENT_LOG_LEVEL ?? 'silent'),
    }) as BootedKernel;
  } catch (error) {
    // A rejected config or plugin list leaves no temporary folder behind.
    if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
  kernel.close = async () => {
    await kernel.stop();
    if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
  };
  if (options.start !== false) {
    try {
      await kernel.start();
    } catch (error) {
      await kernel.close().catch(() => undefined);
      throw error;
    }
  }
  return kernel;
}
