/**
 * What a runtime author needs beyond `definePlugin` (`tenement/sdk/runtime`): the process helpers the
 * first-party process-based tiers use. A runtime registers its tier on its definition (`tiers: [{ name, traits,
 * probe }]`) and answers `ctx.hooks.spawn.for(name)` with a RunningHandle; spawnGroup makes one for a launcher
 * (unshare, bwrap, systemd-run...) in front of the app. docs/plugins.md#writing-a-runtime.
 */
export { spawnGroup, type GroupLaunch, type GroupControl } from '../core/process/spawn-group.ts';
export { specUser, prepareDataDir, assertReachable, type TenantUser } from '../core/process/tenant-user.ts';
export { resolveTenantProgram, tenantEnv, dropPrivilegesArgs, findSetpriv, findProgram, SYSTEM_PATH } from '../core/process/tenant-launch.ts';
export { treeOwnsListener, treeStats, processTree } from '../core/process/tree.ts';
export type { TierDeclaration, TierProbeResult, FieldShape } from '../core/config/compose.ts';
export type { RunningHandle, SpawnSpec, ExitInfo, InstanceStats } from '../core/types.ts';
export type { TierTraits } from '../core/tier-traits.ts';
/** The zod the config schema is made of: fragments (`serviceFields`, `settingsFields`, `options`) are zod schemas. */
export { z } from 'zod';
