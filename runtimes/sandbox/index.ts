import { definePlugin } from '../../sdk/index.ts';
import type { TierProbe } from '../../sdk/index.ts';
import { removeLeftovers } from './leftovers.ts';
import { probeSandbox } from './probe.ts';
import { findRunsc, sandboxFlags, sandboxPaths } from './runsc.ts';
import { spawnSandbox } from './spawn-sandbox.ts';
import { WarmPool } from './warm-pool.ts';

export interface SandboxOptions {
  /** Path of the runsc binary (default: `runsc` on PATH). */
  runsc?: string;
  /**
   * Booted, empty sandboxes kept ready per kind of instance (TCP, Unix socket), so a start or a wake skips
   * gVisor's boot (docs/sandbox.md, "Warm sandboxes"). Each costs about 38 MB of host memory per server (not
   * per instance). Default 0 (off): on this runsc it saves about 25 ms of a 350 ms wake.
   */
  warmSandboxes?: number;
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
  async setup(ctx) {
    const options = ctx.config;
    // runsc starts inside the instance cgroups, so limits bound the sandbox; runsc resolves a symlinked
    // DATA_DIR on the host side and mounts it at the link's target, where the app would not find it.
    ctx.tiers.declare('sandbox', { cgroups: 'limits', followsDataDirLink: false });
    const paths = sandboxPaths(ctx.settings.dataDir);
    const configured = options?.runsc;

    let binary: string | null = null;
    try {
      binary = findRunsc(configured);
    } catch {
      // No runsc: the probe reports it, and spawns fail with the same reason.
    }
    if (binary) {
      const left = await removeLeftovers(binary, paths);
      if (left.length > 0) ctx.log.warn({ containers: left }, 'removed gVisor containers left by a previous run');
    }

    const warmSandboxes = options?.warmSandboxes ?? 0;
    if (!Number.isInteger(warmSandboxes) || warmSandboxes < 0) {
      throw new Error(`warmSandboxes must be a whole number >= 0 (got ${String(warmSandboxes)})`);
    }
    let pool: WarmPool | undefined;
    if (binary && warmSandboxes > 0) {
      const created = new WarmPool({
        runsc: binary,
        paths,
        dataRoot: ctx.settings.dataDir,
        size: warmSandboxes,
        onError: (error) => ctx.log.warn({ err: error }, 'warm sandbox not available; starts boot their own'),
      });
      pool = created;
      ctx.onClose(() => created.close());
      // The kinds of sandbox this config runs in the host's network namespace (a private one boots its own).
      const services = ctx.services.entries().map(([, s]) => s).filter((s) => s.isolation === 'sandbox' && s.network === 'host');
      if (services.some((s) => s.listen === 'port')) created.prewarm(sandboxFlags(false));
      if (services.some((s) => s.listen === 'socket')) created.prewarm(sandboxFlags(true));
    }

    // One real probe per server: starting a container takes about half a second.
    let probed: Promise<TierProbe> | null = null;
    ctx.hooks.probe.for('sandbox').tap(() => (probed ??= probeSandbox(configured, paths)));
    ctx.hooks.spawn.for('sandbox').tap((spec) =>
      spawnSandbox(spec, {
        runsc: findRunsc(configured),
        dataRoot: ctx.settings.dataDir,
        paths,
        ...(pool ? { pool } : {}),
      }),
    );
  },
});
