/**
 * A third-party runtime, written against the SDK only: the `unshare` tier runs each instance in its own pid,
 * mount, ipc and uts namespaces with util-linux's unshare (a fresh /proc that shows only the instance's
 * processes), as the instance's own uid when Tenement is root (setpriv, no capabilities). Lighter than the
 * first-party `namespace` tier (bubblewrap): the file system and the network are the host's. Walkthrough:
 * docs/plugins.md#writing-a-runtime.
 */
import { definePlugin } from '../../sdk/index.ts';
import {
  SYSTEM_PATH,
  dropPrivilegesArgs,
  findProgram,
  findSetpriv,
  prepareDataDir,
  resolveTenantProgram,
  spawnGroup,
  specUser,
  tenantEnv,
  treeOwnsListener,
  treeStats,
  z,
  type TierProbeResult,
} from '../../sdk/runtime.ts';

/** The plugin's options (`pluginOptions['runtime-unshare']`): ctx.config is this schema's output. */
const options = z
  .strictObject({
    /** The unshare binary; default: found in the system folders. */
    unshare: z.string().startsWith('/', 'expected an absolute path').optional(),
  })
  .default({});

/** A field this runtime adds to `services.<name>`: which namespaces besides pid and mount. */
const serviceFields = {
  unshare: z
    .strictObject({
      /** Own System V IPC and POSIX message queues. */
      ipc: z.boolean().default(true),
      /** Own hostname (set to the instance's key by nobody: it starts as the host's). */
      uts: z.boolean().default(true),
    })
    .optional(),
};

type Options = z.output<typeof options>;

// The same field for the types of tenement.config.ts (defineConfig): a package would say 'tenement/sdk'.
declare module '../../sdk/index.ts' {
  interface PluginServiceFields {
    unshare?: z.input<typeof serviceFields.unshare>;
  }
}

function findUnshare(configured: string | undefined): string | null {
  return configured ?? findProgram('unshare', SYSTEM_PATH, '/');
}

/** Whether the host can run the tier: unshare is there and this process may create the namespaces. */
function probe(configured: string | undefined): TierProbeResult {
  const unshare = findUnshare(configured);
  if (!unshare) return { available: false, reason: 'unshare is not installed: apt-get install util-linux' };
  if (process.getuid?.() !== 0) {
    return { available: false, reason: 'the unshare tier needs root (mount and pid namespaces without a user namespace)' };
  }
  try {
    findSetpriv('unshare');
  } catch (error) {
    return { available: false, reason: (error as Error).message };
  }
  return { available: true };
}

export default definePlugin<Options>({
  name: 'runtime-unshare',
  version: '1.0.0',
  kernel: '^1',
  // Registering the tier makes `isolation: 'unshare'` valid while this plugin is loaded. The app is a process
  // of ours that inherits the instance cgroups (spawnGroup joins them before unshare runs), so limits bound it;
  // it starts as the tenant uid, so it gets one of its own.
  tiers: [{ name: 'unshare', traits: { cgroups: 'limits', tenantUid: true }, probe: () => probe(undefined) }],
  serviceFields,
  options: options as z.ZodType<Options>,
  setup(ctx) {
    const configured = ctx.config.unshare;
    ctx.hooks.spawn.for('unshare').tap(async (spec) => {
      const unshare = findUnshare(configured);
      if (!unshare) throw new Error('unshare is not installed: apt-get install util-linux');
      const user = specUser(spec);
      const program = await resolveTenantProgram(spec, user);
      const own = (spec.config as { unshare?: { ipc: boolean; uts: boolean } }).unshare ?? { ipc: true, uts: true };
      const namespaces = ['--pid', '--fork', '--kill-child', '--mount-proc', ...(own.ipc ? ['--ipc'] : []), ...(own.uts ? ['--uts'] : [])];
      // The app must not be pid 1 of its namespace: pid 1 ignores the SIGTERM of a graceful stop. A shell is
      // pid 1 and waits for it; the stop's signal reaches the app through the process group.
      const init = ['/bin/sh', '-c', '"$@" & wait $!', 'init'];
      const drop = user ? [findSetpriv('unshare'), ...dropPrivilegesArgs(user)] : [];
      if (user) await prepareDataDir(ctx.paths.dataDir, spec.dataDir, user);
      return spawnGroup(
        spec,
        { program: unshare, args: [...namespaces, '--', ...drop, ...init, program, ...spec.args], env: tenantEnv(spec, user) },
        // The app is a grandchild of the leader: its listener and its memory are found in the leader's tree.
        { ownsListener: treeOwnsListener, stats: treeStats },
      );
    });
  },
});
