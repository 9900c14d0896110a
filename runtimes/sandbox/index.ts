import { definePlugin } from '../../sdk/index.ts';
import type { TierProbe } from '../../sdk/index.ts';
import { removeLeftovers } from './leftovers.ts';
import { probeSandbox } from './probe.ts';
import { findRunsc, sandboxPaths } from './runsc.ts';
import { spawnSandbox } from './spawn-sandbox.ts';

export interface SandboxOptions {
  /** Path of the runsc binary (default: `runsc` on PATH). */
  runsc?: string;
}

/**
 * The `sandbox` tier: each instance runs in a gVisor sandbox (`runsc run`, ptrace platform) with its own
 * kernel, the host's / read-only, a private /tmp and its DATA_DIR as the only writable folder, as an
 * unprivileged uid with no capabilities. docs/sandbox.md.
 */
export default definePlugin<SandboxOptions | undefined>({
  name: 'runtime-sandbox',
  version: '1.0.0',
  kernel: '^1',
  async setup(kernel, options) {
    const paths = sandboxPaths(kernel.config.settings.dataDir);
    const configured = options?.runsc;

    let binary: string | null = null;
    try {
      binary = findRunsc(configured);
    } catch {
      // No runsc: the probe reports it, and spawns fail with the same reason.
    }
    if (binary) {
      const left = await removeLeftovers(binary, paths);
      if (left.length > 0) kernel.log.warn({ containers: left }, 'runtime-sandbox: removed gVisor containers left by a previous run');
    }

    // One real probe per server: starting a container takes about half a second.
    let probed: Promise<TierProbe> | null = null;
    kernel.hooks.probe.for('sandbox').tapPromise('runtime-sandbox', () => (probed ??= probeSandbox(configured, paths)));
    kernel.hooks.spawn.for('sandbox').tapPromise('runtime-sandbox', (spec) =>
      spawnSandbox(spec, {
        runsc: findRunsc(configured),
        dataRoot: kernel.config.settings.dataDir,
        paths,
        tenantUids: kernel.config.settings.tenantUids,
      }),
    );
  },
});
