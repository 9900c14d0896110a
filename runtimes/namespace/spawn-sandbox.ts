import path from 'node:path';
import { ErrorCodes, TenementError } from '../../core/errors.ts';
import { spawnGroup } from '../../core/process/spawn-group.ts';
import { treeOwnsListener, treeStats } from '../../core/process/tree.ts';
import type { RunningHandle, SpawnSpec } from '../../core/types.ts';
import { bwrapArgs, sandboxHostname } from './bwrap-args.ts';
import { findProgram } from '../../core/process/tenant-launch.ts';
import { hostTools, installRoot } from './host-tools.ts';
import { terminateSandbox } from './sandbox-tree.ts';
import { assertReachable, prepareDataDir, specUser } from '../../core/process/tenant-user.ts';

const TENANT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** Already visible inside through the base layout. */
const BASE_ROOTS = ['/usr', '/etc', '/bin', '/sbin', '/lib', '/lib64'];

export interface SandboxSettings {
  dataRoot: string;
}

const under = (dir: string, roots: readonly string[]): boolean => roots.some((root) => dir === root || dir.startsWith(`${root}/`));

/**
 * Starts one instance inside bwrap. As root, bwrap is started through setpriv as the tenant's uid, with a user
 * namespace mapping that uid to itself: the tenant is never root, inside or out, and has no capabilities.
 * Otherwise bwrap runs as Tenement's own user (in a user namespace, also without capabilities).
 */
export async function spawnSandbox(spec: SpawnSpec, settings: SandboxSettings): Promise<RunningHandle> {
  const asRoot = process.getuid?.() === 0;
  const tools = hostTools(asRoot);
  const dataRoot = path.resolve(settings.dataRoot);
  const cwd = path.resolve(spec.cwd);

  // The tenant's PATH: the system folders, plus the folder of the node running Tenement (apps start `node`).
  const nodeBin = path.dirname(process.execPath);
  const tenantPath = TENANT_PATH.split(':').includes(nodeBin) ? TENANT_PATH : `${nodeBin}:${TENANT_PATH}`;
  const program = findProgram(spec.command, tenantPath, cwd) ?? findProgram(spec.command, process.env.PATH ?? '', cwd);
  if (!program) {
    throw new TenementError(ErrorCodes.SPAWN_FAILED, `cannot start ${spec.service}:${spec.id}: command not found: ${spec.command} (cwd ${cwd})`);
  }
  const extraReadOnly = new Set<string>();
  for (const binary of [program, process.execPath]) {
    const root = installRoot(binary);
    if (!under(root, BASE_ROOTS) && !under(root, [cwd])) extraReadOnly.add(root);
  }

  const user = specUser(spec);
  if (user) {
    await prepareDataDir(dataRoot, spec.dataDir, user);
    await assertReachable(cwd, user, 'the working directory');
    for (const dir of extraReadOnly) await assertReachable(dir, user, 'the program folder');
  }

  const sandbox = bwrapArgs({
    program,
    args: spec.args,
    cwd,
    dataRoot,
    dataDir: spec.dataDir,
    hostname: sandboxHostname(spec.service, spec.id),
    extraReadOnly: [...extraReadOnly],
    user,
    rootInUserns: spec.rootInUserns,
    resolvConf: spec.resolvConf,
  });
  // Only what the tenant is meant to have: not Tenement's own environment (tokens, cloud credentials).
  // bwrap passes its environment through, and the orphan scan recognises the sandbox by it.
  const env: Record<string, string> = { PATH: tenantPath, HOME: spec.dataDir, LANG: process.env.LANG ?? 'C.UTF-8', ...spec.env };
  const launch =
    user && tools.setpriv
      ? { program: tools.setpriv, args: [`--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', tools.bwrap, ...sandbox], env }
      : { program: tools.bwrap, args: sandbox, env };
  return spawnGroup(spec, launch, { terminate: terminateSandbox, ownsListener: treeOwnsListener, stats: treeStats });
}
