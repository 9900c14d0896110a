import path from 'node:path';
import { spawnGroup } from '../../core/process/spawn-group.ts';
import { dropPrivilegesArgs, findSetpriv, resolveTenantProgram, tenantEnv } from '../../core/process/tenant-launch.ts';
import { prepareDataDir, specUser } from '../../core/process/tenant-user.ts';
import { definePlugin } from '../../sdk/index.ts';

/**
 * The `process` tier: each instance is a plain process in its own process group, no namespaces. It is never
 * root: when Tenement runs as root, the tenant is started through setpriv as the instance's uid with no
 * capabilities, and owns its DATA_DIR. Its environment is its own (tenantEnv), not Tenement's. docs/isolation.md.
 */
export default definePlugin({
  name: 'runtime-process',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    // Joins the instance cgroups in spawnGroup, and the app is the process the limits bound.
    ctx.tiers.declare('process', { cgroups: 'limits' });
    const asRoot = process.getuid?.() === 0;
    ctx.hooks.probe.for('process').tap(async () => {
      try {
        if (asRoot) findSetpriv('process');
        return { available: true };
      } catch (error) {
        return { available: false, reason: (error as Error).message };
      }
    });
    ctx.hooks.spawn.for('process').tap(async (spec) => {
      const user = specUser(spec);
      const program = await resolveTenantProgram(spec, user);
      const env = tenantEnv(spec, user);
      if (!user) return spawnGroup(spec, { program, args: spec.args, env });
      const setpriv = findSetpriv('process');
      await prepareDataDir(path.resolve(ctx.settings.dataDir), spec.dataDir, user);
      return spawnGroup(spec, { program: setpriv, args: [...dropPrivilegesArgs(user), program, ...spec.args], env });
    });
  },
});
