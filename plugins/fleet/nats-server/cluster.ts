/**
 * A local NATS JetStream cluster of 1 or 3 servers in a folder it owns (`ten nats start`): one config file,
 * store and log per server, cluster routes between them, monitor ports on loopback, and the watchdog.
 *
 * The folder: `<dir>/.tenement-nats` marks it as ours (a non-empty folder without it is refused, so a typo
 * cannot write stores into someone's folder), `<dir>/cluster.json` keeps the size and ports (a store's
 * cluster membership is tied to its routes, so a later start reuses them), `<dir>/ten-nats.pid` the running
 * `ten nats start` (a second one on the same folder is refused).
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { NatsServerProcess } from './process.ts';
import { startWatchdog, type Watchdog, type WatchdogEvent } from './watchdog.ts';
import type { WatchdogPolicy } from './health.ts';

export interface LocalClusterOptions {
  dir: string;
  size: 1 | 3;
  /** Address clients connect to (default 127.0.0.1); routes and monitors stay on loopback. */
  host?: string;
  /** First client/route/monitor port (each server takes the next); 0 = free ports. Defaults 4222, 6222, 8222. */
  port?: number;
  clusterPort?: number;
  monitorPort?: number;
  binary?: string;
  pollMs?: number;
  policy?: WatchdogPolicy;
  onEvent?: (event: WatchdogEvent) => void;
  /** How long to wait for every server to be JetStream-ready (default 60 s). */
  readyTimeoutMs?: number;
}

export interface ClusterPlanEntry {
  name: string;
  client: number;
  route: number;
  monitor: number;
}

export interface ClusterFile {
  size: 1 | 3;
  host: string;
  servers: ClusterPlanEntry[];
}

export interface LocalCluster {
  urls: string[];
  servers: NatsServerProcess[];
  watchdog: Watchdog;
  /** Graceful stop of every server (and the watchdog); removes the pid file. */
  stop(): Promise<void>;
}

export class NatsClusterError extends Error {
  /** `portTaken`: a server could not bind a port it was given (another process took it first). */
  constructor(message: string, readonly code: string, readonly portTaken = false) {
    super(message);
  }
}

const MARKER = '.tenement-nats';
const CLUSTER_FILE = 'cluster.json';
const PID_FILE = 'ten-nats.pid';
const CLUSTER_NAME = 'tenement';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the folder: creates it, or accepts it when it is ours and no other `ten nats start` runs on it. */
export function claimDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const entries = readdirSync(dir);
  if (entries.length > 0 && !entries.includes(MARKER)) {
    throw new NatsClusterError(`${dir} is not empty and was not made by ten nats start (no ${MARKER}): give an empty or new folder`, 'TNM_ERR_NATS_DIR');
  }
  const pidFile = path.join(dir, PID_FILE);
  if (existsSync(pidFile)) {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new NatsClusterError(`ten nats start already runs on ${dir} (pid ${pid})`, 'TNM_ERR_NATS_DIR');
    }
  }
  writeFileSync(path.join(dir, MARKER), 'made by ten nats start\n');
  writeFileSync(pidFile, `${process.pid}\n`);
}

export function readClusterFile(dir: string): ClusterFile | null {
  try {
    return JSON.parse(readFileSync(path.join(dir, CLUSTER_FILE), 'utf8')) as ClusterFile;
  } catch {
    return null;
  }
}

/** The ports: the folder's earlier ones when it has them, else the given bases, else free ones. */
async function planFor(options: LocalClusterOptions): Promise<ClusterFile> {
  const host = options.host ?? '127.0.0.1';
  const previous = readClusterFile(options.dir);
  if (previous) {
    if (previous.size !== options.size) {
      throw new NatsClusterError(`${options.dir} holds a cluster of ${previous.size}; start it with --size ${previous.size} or use another folder`, 'TNM_ERR_NATS_DIR');
    }
    return { ...previous, host };
  }
  const pick = async (base: number | undefined, fallback: number, i: number): Promise<number> =>
    base === 0 ? await freePort() : (base ?? fallback) + i;
  const servers: ClusterPlanEntry[] = [];
  for (let i = 0; i < options.size; i++) {
    servers.push({
      name: `n${i + 1}`,
      client: await pick(options.port, 4222, i),
      route: await pick(options.clusterPort, 6222, i),
      monitor: await pick(options.monitorPort, 8222, i),
    });
  }
  return { size: options.size, host, servers };
}

/** nats-server's config syntax; strings JSON-quoted (a path with spaces or quotes stays one string). */
export function serverConfig(entry: ClusterPlanEntry, plan: ClusterFile, serverDir: string): string {
  const q = (value: string): string => JSON.stringify(value);
  const lines = [
    `server_name: ${q(entry.name)}`,
    `listen: ${q(`${plan.host}:${entry.client}`)}`,
    `http: ${q(`127.0.0.1:${entry.monitor}`)}`,
    `pid_file: ${q(path.join(serverDir, 'nats-server.pid'))}`,
    `jetstream {`,
    `  store_dir: ${q(path.join(serverDir, 'store'))}`,
    `}`,
  ];
  if (plan.size > 1) {
    const routes = plan.servers.filter((s) => s !== entry).map((s) => q(`nats://127.0.0.1:${s.route}`));
    lines.push(`cluster {`, `  name: ${q(CLUSTER_NAME)}`, `  listen: ${q(`127.0.0.1:${entry.route}`)}`, `  routes: [${routes.join(', ')}]`, `}`);
  }
  return `${lines.join('\n')}\n`;
}

async function jetstreamReady(monitorUrl: string, clustered: boolean): Promise<boolean> {
  try {
    const health = await fetch(`${monitorUrl}/healthz?js-enabled-only=true`, { signal: AbortSignal.timeout(2000) });
    if (health.status !== 200) return false;
    if (!clustered) return true;
    const jsz = (await (await fetch(`${monitorUrl}/jsz`, { signal: AbortSignal.timeout(2000) })).json()) as { meta_cluster?: { leader?: string } };
    return typeof jsz.meta_cluster?.leader === 'string' && jsz.meta_cluster.leader !== '';
  } catch {
    return false;
  }
}

/** A fresh cluster on free ports may lose one to another process between picking and binding it. */
const PORT_RACE_ATTEMPTS = 3;

export async function startLocalCluster(options: LocalClusterOptions): Promise<LocalCluster> {
  const dir = path.resolve(options.dir);
  claimDir(dir);
  const fresh = readClusterFile(dir) === null;
  const freePorts = options.port === 0 || options.clusterPort === 0 || options.monitorPort === 0;
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch(options, dir);
    } catch (error) {
      // Only a first start on ports picked here is tried again, on other ports: a folder's own ports (in
      // cluster.json) or the user's are kept, and a port someone holds there is their error to see.
      const raced = error instanceof NatsClusterError && error.portTaken && fresh && freePorts && attempt < PORT_RACE_ATTEMPTS;
      if (!raced) throw error;
      rmSync(path.join(dir, CLUSTER_FILE), { force: true });
      for (let i = 1; i <= options.size; i++) rmSync(path.join(dir, `n${i}`), { recursive: true, force: true });
      claimDir(dir); // the failed attempt gave up the folder's pid file
    }
  }
}

async function launch(options: LocalClusterOptions, dir: string): Promise<LocalCluster> {
  const plan = await planFor({ ...options, dir });
  writeFileSync(path.join(dir, CLUSTER_FILE), `${JSON.stringify({ size: plan.size, host: plan.host, servers: plan.servers }, null, 2)}\n`);
  const clientHost = plan.host === '0.0.0.0' || plan.host === '::' ? '127.0.0.1' : plan.host;
  const servers = plan.servers.map((entry) => {
    const serverDir = path.join(dir, entry.name);
    mkdirSync(serverDir, { recursive: true, mode: 0o700 });
    const configFile = path.join(serverDir, 'nats-server.conf');
    writeFileSync(configFile, serverConfig(entry, plan, serverDir));
    return new NatsServerProcess({
      name: entry.name,
      binary: options.binary ?? 'nats-server',
      configFile,
      logFile: path.join(serverDir, 'nats-server.log'),
      url: `nats://${clientHost.includes(':') ? `[${clientHost}]` : clientHost}:${entry.client}`,
      monitorUrl: `http://127.0.0.1:${entry.monitor}`,
    });
  });
  const stopAll = async (): Promise<void> => {
    await Promise.all(servers.map((s) => s.stop()));
  };
  for (const server of servers) server.start();
  const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
  try {
    for (;;) {
      const dead = servers.find((s) => !s.running);
      if (dead) {
        const tail = dead.logTail();
        throw new NatsClusterError(`nats-server ${dead.name} exited at start:\n${tail}`, 'TNM_ERR_NATS_START', /address already in use/.test(tail));
      }
      const ready = await Promise.all(servers.map((s) => jetstreamReady(s.spec.monitorUrl, plan.size > 1)));
      if (ready.every(Boolean)) break;
      if (Date.now() > deadline) {
        const slow = servers.filter((_, i) => !ready[i]).map((s) => `${s.name}:\n${s.logTail(1500)}`);
        throw new NatsClusterError(`the NATS servers were not JetStream-ready in time:\n${slow.join('\n')}`, 'TNM_ERR_NATS_START');
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } catch (error) {
    await stopAll();
    rmSync(path.join(dir, PID_FILE), { force: true });
    throw error;
  }
  const watchdog = startWatchdog(servers, { pollMs: options.pollMs, policy: options.policy, onEvent: options.onEvent });
  return {
    urls: servers.map((s) => s.spec.url),
    servers,
    watchdog,
    async stop() {
      await watchdog.stop();
      await stopAll();
      rmSync(path.join(dir, PID_FILE), { force: true });
    },
  };
}
