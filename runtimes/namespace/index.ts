import { definePlugin } from '../../sdk/index.ts';
import { hostTools } from './host-tools.ts';
import { spawnSandbox } from './spawn-sandbox.ts';

/**
 * The `namespace` tier: each instance runs under bubblewrap with its own pid, ipc, uts, mount and user
 * namespaces, a read-only host file system and one writable folder (its DATA_DIR). docs/isolation.md.
 */
export default definePlugin({
  name: 'runtime-namespace',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    // bwrap starts inside the instance cgroups (spawnGroup joins them first): limits bound the app.
    ctx.tiers.declare('namespace', { cgroups: 'limits' });
    ctx.hooks.probe.for('namespace').tap(async () => {
      try {
        hostTools(process.getuid?.() === 0);
        return { available: true };
      } catch (error) {
        return { available: false, reason: (error as Error).message };
      }
    });
    ctx.hooks.spawn.for('namespace').tap((spec) =>
      spawnSandbox(spec, { dataRoot: ctx.settings.dataDir }),
    );
  },
});
