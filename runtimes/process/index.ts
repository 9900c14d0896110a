import { spawnGroup } from '../../core/process/spawn-group.ts';
import { definePlugin } from '../../sdk/index.ts';

/** The `process` tier: each instance is a plain process in its own process group. No isolation. */
export default definePlugin({
  name: 'runtime-process',
  version: '1.0.0',
  kernel: '^1',
  setup(kernel) {
    kernel.hooks.spawn
      .for('process')
      .tapPromise('runtime-process', (spec) =>
        spawnGroup(spec, { program: spec.command, args: spec.args, env: { ...process.env, ...spec.env } }),
      );
  },
});
