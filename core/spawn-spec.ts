import { interpolate, type PlaceholderValues } from './config/interpolate.ts';
import type { Instance } from './instance.ts';
import type { Kernel } from './kernel.ts';
import { instanceSocketPath } from './socket-path.ts';
import type { ExitInfo, SpawnSpec } from './types.ts';

/**
 * What a runtime is asked to start for one run of `instance`: its command with placeholders filled in, the
 * tenant's environment (where to listen, DATA_DIR, its names), its uid, and the callbacks that feed its output
 * into the instance's log and report its exit. `beforeSpawn` taps may rewrite it afterwards.
 */
export function buildSpawnSpec(kernel: Kernel, instance: Instance, port: number, dataDir: string, onExit: (exit: ExitInfo) => void): SpawnSpec {
  const config = instance.config;
  // Each run takes the tier chosen for its service now: a reload may have changed its isolation.
  instance.tier = kernel.tierOf(instance.service).tier;
  const values: PlaceholderValues = {
    service: instance.service,
    id: instance.id,
    port: String(port),
    instance_dir: dataDir,
    data_dir: kernel.config.settings.dataDir,
  };
  const command = interpolate(config.command, values);
  const [program, args] = config.args ? [command, config.args.map((a) => interpolate(a, values))] : kernel.splitCommand(command);
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(config.env)) env[name] = interpolate(value, values);
  // Where to listen: HOST:PORT, or SOCKET_PATH alone (an app that sees PORT would listen there too).
  // A network plugin may move HOST (a private namespace's own address) in beforeSpawn.
  const socketPath = config.listen === 'socket' ? instanceSocketPath(dataDir) : undefined;
  Object.assign(env, socketPath ? { SOCKET_PATH: socketPath } : { PORT: String(port), HOST: '127.0.0.1' }, {
    DATA_DIR: dataDir,
    TENEMENT_SERVICE: instance.service,
    TENEMENT_INSTANCE: instance.id,
  });
  return {
    ...(socketPath ? { socketPath } : {}),
    service: instance.service,
    id: instance.id,
    tier: instance.tier,
    command: program,
    args,
    env,
    cwd: config.cwd ?? process.cwd(),
    port,
    host: '127.0.0.1',
    dataDir,
    config,
    user: kernel.tierTraits(instance.tier).tenantUid ? kernel.uids.userFor(instance.service, instance.id, config) : null,
    onLog: (stream, line) => {
      const entry = { at: Date.now(), stream, line };
      instance.logs.push(entry);
      kernel.hooks.log.call(instance, entry);
    },
    onExit,
  };
}
