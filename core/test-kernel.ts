import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveConfig } from './config/loader.ts';
import type { ConfigInput } from './config/schema.ts';
import { Kernel } from './kernel.ts';
import { createLogger } from './logger.ts';
import type { PluginEntry } from './plugin.ts';

export interface TestKernel extends Kernel {
  /** Stops the kernel and removes its temporary data directory. */
  close(): Promise<void>;
}

/**
 * A kernel with exactly the plugins a test needs, on a random loopback port and a fresh temporary data dir
 * (unless the config names one), already started.
 */
export async function createTestKernel(options: {
  plugins: readonly PluginEntry[];
  config?: ConfigInput;
  /** Resolve relative paths (cwd of services) against this directory. */
  dir?: string;
  start?: boolean;
}): Promise<TestKernel> {
  const config = options.config ?? {};
  const ownDataDir = config.settings?.dataDir === undefined;
  const dataDir = config.settings?.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'tenement-test-'));
  const resolved = resolveConfig(
    { ...config, settings: { port: 0, ...config.settings, dataDir } },
    { path: null, dir: options.dir ?? process.cwd() },
  );
  const kernel = new Kernel({
    config: resolved,
    plugins: options.plugins,
    logger: createLogger(process.env.TENEMENT_LOG_LEVEL ?? 'silent'),
  }) as TestKernel;
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
