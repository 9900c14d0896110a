/**
 * `ten nats start`: a local NATS JetStream cluster for a small fleet (1 or 3 servers), in the foreground, with
 * the watchdog of plugins/fleet/nats-server (restarts a server that exits or stays "not current").
 */
import path from 'node:path';
import { Option, type Command } from 'commander';
import { CliError } from '../client.ts';
import { color, out } from '../output.ts';
import { duration, examples, integer } from './common.ts';

interface StartFlags {
  size: string;
  dir: string;
  host: string;
  port: number;
  clusterPort: number;
  monitorPort: number;
  poll: number;
  notCurrent: number;
  json?: boolean;
}

export function registerNats(program: Command): void {
  const nats = program.command('nats').description('Run the NATS servers a small fleet shares (ten serve --fleet connects to them)');
  const start = nats
    .command('start')
    .description(
      'Run a local NATS JetStream cluster (1 or 3 servers) in the foreground: stores in --dir, routes between the ' +
        'servers, monitors on loopback; a watchdog restarts a server that exits or whose /healthz stays "not current". Ctrl-C stops them',
    )
    .addOption(new Option('--size <n>', 'servers: 1, or 3 for a cluster that survives one loss').choices(['1', '3']).default('3'))
    .option('--dir <folder>', 'folder for the stores, configs and logs (created; a non-empty folder must be one ten nats start made)', 'tenement-nats')
    .option('--host <address>', 'address the client ports listen on (routes and monitors stay on 127.0.0.1)', '127.0.0.1')
    .option('--port <port>', 'first client port (each server takes the next); 0 = free ports', integer(0, 65_535), 4222)
    .option('--cluster-port <port>', 'first route port; 0 = free ports', integer(0, 65_535), 6222)
    .option('--monitor-port <port>', 'first monitor port (/healthz, /jsz); 0 = free ports', integer(0, 65_535), 8222)
    .option('--poll <duration>', 'how often the watchdog asks every server /healthz', duration, 5_000)
    .option('--not-current <duration>', 'restart a server (SIGTERM, start) after its /healthz says "not current" this long', duration, 15_000)
    .option('--json', 'print events as JSON lines')
    .action(runStart);
  examples(start, [
    ['ten nats start', '3 servers on 4222-4224, stores in ./tenement-nats'],
    ['ten nats start --size 1 --port 4300 --dir /var/lib/tenement-nats'],
    ['ten serve --fleet nats://127.0.0.1:4222,nats://127.0.0.1:4223,nats://127.0.0.1:4224', 'then, on this host'],
  ]);
}

async function runStart(flags: StartFlags): Promise<void> {
  const size = flags.size === '1' ? 1 : 3;
  if (flags.poll < 100) throw new CliError('--poll: at least 100ms');
  // Loaded here: `ten --help` must stay clear of plugins/.
  const { startLocalCluster, NatsClusterError } = await import('../../plugins/fleet/nats-server/cluster.ts');
  const print = (line: string, event: Record<string, unknown>): void => {
    if (flags.json) process.stdout.write(`${JSON.stringify({ at: new Date().toISOString(), ...event })}\n`);
    else out(`${color.dim(new Date().toISOString())} ${line}`);
  };
  const dir = path.resolve(flags.dir);
  let cluster: Awaited<ReturnType<typeof startLocalCluster>>;
  try {
    cluster = await startLocalCluster({
      dir,
      size,
      host: flags.host,
      port: flags.port,
      clusterPort: flags.clusterPort,
      monitorPort: flags.monitorPort,
      pollMs: flags.poll,
      policy: { notCurrentMs: flags.notCurrent, graceMs: flags.notCurrent },
      onEvent: (event) => {
        const what =
          event.kind === 'health'
            ? `${event.server} /healthz: ${event.verdict === 'ok' ? color.green('ok') : color.yellow(`${event.verdict}${event.error ? ` (${event.error})` : ''}`)}`
            : event.kind === 'exited'
              ? `${event.server} ${color.red(`exited (${event.signal ?? `code ${event.code}`})`)}: starting it again in ${event.restartInMs} ms`
              : event.kind === 'restarting'
                ? `${event.server} ${color.yellow(`restarting: ${event.reason}`)}`
                : `${event.server} started (pid ${event.pid})`;
        print(what, { ...event });
      },
    });
  } catch (error) {
    if (error instanceof NatsClusterError) throw new CliError(error.message, error.code);
    throw error;
  }
  const urls = cluster.urls.join(',');
  print(`${size} NATS server(s) JetStream-ready: ${urls}`, {
    kind: 'ready',
    urls: cluster.urls,
    servers: cluster.servers.map((s) => ({ name: s.name, url: s.spec.url, monitorUrl: s.spec.monitorUrl, pid: s.pid })),
    dir,
  });
  if (!flags.json) out(`  join a fleet:  ten serve --fleet ${urls}\n  stores, logs:  ${dir}\n  Ctrl-C stops the servers`);

  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    print(`${signal}: stopping the NATS servers`, { kind: 'stopping', signal });
    cluster.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  // The servers and the watchdog's timer keep the process alive until a signal.
}
