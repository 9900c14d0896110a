// A real nats-server JetStream cluster (1 or 3 servers) on free loopback ports, for fleet-mode tests.
// Every server gets its own store folder under one temp folder; stop() (or the test file's process exiting)
// kills them and removes the folder.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort, onPath, sleep } from './helpers.ts';

export const NATS_SERVER = '/usr/sbin/nats-server';

/** True when nats-server can be run here (tests skip with this reason otherwise). */
export function natsServerAvailable(): boolean {
  return onPath('nats-server');
}

export interface NatsServerHandle {
  name: string;
  /** nats://127.0.0.1:<client port> */
  url: string;
  /** http://127.0.0.1:<monitor port> (/healthz, /jsz, /varz) */
  monitorUrl: string;
  /** The current process's pid (changes on restart). */
  readonly pid: number;
  /** True while its process runs. */
  readonly running: boolean;
  /** Sends `signal` (default SIGKILL) and resolves when the process exited. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Stops it gracefully if it runs (SIGTERM), starts it again with the same ports and store, resolves when healthy. */
  restart(): Promise<void>;
  /** Its log file's text (for failure messages). */
  log(): string;
}

export interface NatsCluster {
  urls: string[];
  servers: NatsServerHandle[];
  /** The store folders' parent (removed by stop). */
  dir: string;
  stop(): Promise<void>;
}

export interface NatsClusterOptions {
  size?: 1 | 3;
  /** How long to wait for readiness (default 30 s: the machine is shared). */
  timeoutMs?: number;
}

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
process.once('exit', () => {
  for (const child of live) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

interface Plan {
  name: string;
  client: number;
  route: number;
  monitor: number;
}

async function getJson(url: string): Promise<{ status: number; body: unknown }> {
  const reply = await fetch(url, { signal: AbortSignal.timeout(2000) });
  const text = await reply.text();
  let body: unknown = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  return { status: reply.status, body };
}

/** /healthz ok, and in a cluster /jsz names a meta leader. */
async function ready(monitorUrl: string, clustered: boolean): Promise<boolean> {
  try {
    const health = await getJson(`${monitorUrl}/healthz`);
    if (health.status !== 200) return false;
    if (!clustered) return true;
    const jsz = await getJson(`${monitorUrl}/jsz`);
    const meta = (jsz.body as { meta_cluster?: { leader?: string } } | null)?.meta_cluster;
    return typeof meta?.leader === 'string' && meta.leader.length > 0;
  } catch {
    return false;
  }
}

class Server implements NatsServerHandle {
  child: ChildProcess | null = null;
  readonly url: string;
  readonly monitorUrl: string;
  readonly logFile: string;

  constructor(
    readonly plan: Plan,
    readonly args: string[],
    readonly store: string,
    readonly clustered: boolean,
  ) {
    this.url = `nats://127.0.0.1:${plan.client}`;
    this.monitorUrl = `http://127.0.0.1:${plan.monitor}`;
    this.logFile = path.join(store, 'server.log');
  }

  get name(): string {
    return this.plan.name;
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  get running(): boolean {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    const fd = openSync(this.logFile, 'a');
    try {
      const child = spawn(NATS_SERVER, this.args, { stdio: ['ignore', fd, fd] });
      live.add(child);
      child.once('exit', () => live.delete(child));
      child.once('error', () => live.delete(child));
      this.child = child;
    } finally {
      closeSync(fd);
    }
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8').slice(-20_000);
    } catch {
      return '';
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  }

  async restart(timeoutMs = 30_000): Promise<void> {
    await this.kill('SIGTERM');
    this.start();
    await this.waitReady(timeoutMs);
  }

  async waitReady(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.running) throw new Error(`nats-server ${this.name} exited (${this.child?.exitCode ?? this.child?.signalCode}):\n${this.log()}`);
      if (await ready(this.monitorUrl, this.clustered)) return;
      if (Date.now() > deadline) throw new Error(`nats-server ${this.name} not ready after ${timeoutMs} ms:\n${this.log()}`);
      await sleep(25);
    }
  }
}

async function plan(size: number): Promise<Plan[]> {
  const plans: Plan[] = [];
  for (let i = 1; i <= size; i++) plans.push({ name: `n${i}`, client: await freePort(), route: await freePort(), monitor: await freePort() });
  return plans;
}

function serverArgs(p: Plan, all: Plan[], store: string): string[] {
  const args = ['-a', '127.0.0.1', '-p', String(p.client), '-m', String(p.monitor), '-n', p.name, '-js', '-sd', store];
  if (all.length > 1) {
    args.push(
      '--cluster_name', 'tenement-test',
      '--cluster', `nats://127.0.0.1:${p.route}`,
      '--routes', all.filter((o) => o !== p).map((o) => `nats://127.0.0.1:${o.route}`).join(','),
    );
  }
  return args;
}

/** Starts `size` servers (default 3) and resolves once every one is JetStream-ready (and a meta leader exists). */
export async function startNatsCluster(options: NatsClusterOptions = {}): Promise<NatsCluster> {
  const size = options.size ?? 3;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tnm-nats-'));
  dirs.add(dir);
  let lastError: unknown = null;
  // Free ports are picked before the servers bind them; another process may take one meanwhile, so a failed
  // start is retried on fresh ports.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const plans = await plan(size);
    const servers = plans.map((p) => {
      const store = path.join(dir, `${p.name}-${attempt}`);
      mkdirSync(store, { recursive: true });
      return new Server(p, serverArgs(p, plans, store), store, size > 1);
    });
    const stop = async (): Promise<void> => {
      await Promise.all(servers.map((s) => s.kill('SIGKILL')));
    };
    try {
      for (const s of servers) s.start();
      await Promise.all(servers.map((s) => s.waitReady(timeoutMs)));
      return {
        urls: servers.map((s) => s.url),
        servers,
        dir,
        async stop() {
          await stop();
          rmSync(dir, { recursive: true, force: true });
          dirs.delete(dir);
        },
      };
    } catch (error) {
      lastError = error;
      await stop();
    }
  }
  rmSync(dir, { recursive: true, force: true });
  dirs.delete(dir);
  throw lastError;
}
