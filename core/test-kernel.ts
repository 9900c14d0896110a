import { bootKernel, type BootedKernel } from './boot.ts';
import type { ConfigInput } from './config/schema.ts';
import type { Logger } from './logger.ts';
import type { PluginEntry } from './plugin.ts';

/** Tests only: production code boots a kernel of its own with core/boot.ts. */
export type TestKernel = BootedKernel;

/**
 * A kernel with exactly the plugins a test needs, on a random loopback port and a fresh temporary data dir
 * (unless the config names one), already started.
 */
export function createTestKernel(options: {
  plugins: readonly PluginEntry[];
  config?: ConfigInput;
  /** Resolve relative paths (cwd of services) against this directory. */
  dir?: string;
  start?: boolean;
  /** The kernel's log (default: silent unless TENEMENT_LOG_LEVEL); a test reading what plugins log passes its own. */
  logger?: Logger;
}): Promise<TestKernel> {
  return bootKernel({ ...options, tempPrefix: 'tenement-test-' });
}
