/**
 * Shared pieces of the benchmarks: temp dirs, child processes that are always cleaned up, `ten serve` and nginx
 * launchers, a wrk runner and parser, and small statistics helpers. Everything listens on 127.0.0.1 only.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { accessSync, chmodSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Instance } from '../core/instance.ts';
import type { Kernel } from '../core/kernel.ts';
import { killOrphans } from '../core/orphans.ts';

export const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(BENCH_DIR, '..');
export const TEN_BIN = path.join(ROOT, 'bin', 'ten.mjs');

/** What a `ten` process runs: the compiled package (dist/, `npm run build`) or the sources through tsx. */
export interface TenEntry {
  /** The script node is started with. */
  script: string;
  compiled: boolean;
  /** For the report: which of the two, and whether dist/ is older than a source file. */
  label: string;
}

/** Newest modification time of a .ts file under the given folders (the sources dist/ is built from). */
function newestSource(dirs: readonly string[]): { file: string; mtimeMs: number } {
  let newest = { file: '', mtimeMs: 0 };
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        if (entry.name !== 'node_modules' && entry.name !== 'ui') walk(file);
      } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
        const mtimeMs = statSync(file).mtimeMs;
        if (mtimeMs > newest.mtimeMs) newest = { file, mtimeMs };
      }
    }
  };
  for (const dir of dirs) if (existsSync(path.join(ROOT, dir))) walk(path.join(ROOT, dir));
  return newest;
}

/**
 * The compiled package's entry when dist/ has one (what an installed `ten` runs: bench/footprint.ts and bench/cli.ts
 * measure that), else the sources through bin/ten.mjs. A dist/ older than the newest source is used but said so.
 */
export function tenEntry(): TenEntry {
  const compiled = path.join(ROOT, 'dist', 'cli', 'main.js');
  if (!existsSync(compiled)) return { script: TEN_BIN, compiled: false, label: 'sources through tsx (no dist/: `npm run build` to measure the compiled package)' };
  const source = newestSource(['cli', 'core', 'plugins', 'runtimes', 'sdk']);
  const stale = source.mtimeMs > statSync(compiled).mtimeMs;
  return {
    script: compiled,
    compiled: true,
    label: `compiled package (dist/cli/main.js)${stale ? `: STALE, ${path.relative(ROOT, source.file)} is newer; run npm run build` : ''}`,
  };
}
/** The script this bench run's `ten serve`s run, decided (and dist/ built if need be) on first use. */
let serveScript: string | null = null;

/**
 * What a bench's `ten serve` runs when it names no script: the compiled package (what `npm install` gives users,
 * issue 17; tsx's keepNames costs every named closure made per call a defineProperty, which the compiled code
 * never pays), built first (`npm run build`) when dist/ is missing or older than a source. Decided once per bench
 * run: every section measures the same build, though the sources change meanwhile (edits elsewhere in the tree
 * would otherwise fail, or rebuild, the sections after the first). BENCH_TEN_SOURCES=1 runs the sources through tsx.
 */
function defaultServeScript(): string {
  if (serveScript !== null) return serveScript;
  if (process.env.BENCH_TEN_SOURCES === '1') {
    process.stderr.write('bench: ten serve runs the sources through tsx (BENCH_TEN_SOURCES=1)\n');
    return (serveScript = TEN_BIN);
  }
  let entry = tenEntry();
  const fresh = (e: TenEntry): boolean => e.compiled && !e.label.includes('STALE');
  if (!fresh(entry)) {
    process.stderr.write(`bench: building dist/ (npm run build): ${entry.label}\n`);
    // Twice at most: a build another process runs at the same time in this tree (its rm of dist/ against ours) fails one.
    let build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
    if (build.status !== 0) build = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: ['ignore', 2, 2] });
    if (build.status !== 0) throw new Error(`bench: npm run build failed (${build.signal ?? `exit ${build.status}`})`);
    entry = tenEntry();
  }
  // A source edited during the build (or a failed one) leaves dist/ stale: measuring it would mislabel the figures.
  if (!fresh(entry)) throw new Error(`bench: ten serve needs a fresh dist/ (${entry.label}); BENCH_TEN_SOURCES=1 runs the sources`);
  process.stderr.write(`bench: ten serve runs the ${entry.label}\n`);
  return (serveScript = entry.script);
}
export const LOOPBACK = '127.0.0.1';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** True when the module with this import.meta.url is the script node was started with. */
export function isMain(moduleUrl: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && pathToFileURL(path.resolve(entry)).href === moduleUrl;
}

// ---- temp dirs and child processes, all removed or killed on exit ----

const tempDirs = new Set<string>();
const children = new Set<ChildProcess>();
let cleanupInstalled = false;

function installCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', () => {
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) continue;
      // Descendants first: an nginx worker, say, outlives a SIGKILLed master.
      for (const pid of descendants(child.pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      child.kill('SIGKILL');
    }
    for (const dir of tempDirs) {
      // Instances run in their own process groups and outlive a killed `ten serve` or kernel: they are found by
      // the DATA_DIR under our temp dir in their environment.
      killOrphans(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\nbench: ${signal}, cleaning up\n`);
      process.exit(130);
    });
  }
}

/** A fresh directory under the OS temp dir, readable by nginx's unprivileged worker, removed at exit. */
export function makeTempDir(prefix: string): string {
  installCleanup();
  const dir = mkdtempSync(path.join(os.tmpdir(), `tenement-bench-${prefix}-`));
  chmodSync(dir, 0o755);
  tempDirs.add(dir);
  return dir;
}

export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  tempDirs.delete(dir);
}

export interface ManagedChild {
  readonly process: ChildProcess;
  readonly pid: number;
  /** Everything the child wrote to stdout and stderr so far (last 64 KB), for error messages. */
  output(): string;
  /** Resolves when the child has exited. */
  readonly exited: Promise<void>;
  /** Sends `signal`, waits up to `graceMs`, then SIGKILLs. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

export function startChild(command: string, args: readonly string[], options: SpawnOptions = {}): ManagedChild {
  installCleanup();
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  children.add(child);
  let output = '';
  const collect = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-65_536);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    child.once('exit', () => {
      children.delete(child);
      resolve();
    });
    child.once('error', (error) => {
      output += `\nspawn error: ${error.message}`;
      children.delete(child);
      resolve();
    });
  });
  return {
    process: child,
    get pid() {
      return child.pid ?? -1;
    },
    output: () => output,
    exited,
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000) {
      if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

// ---- tools ----

const TOOLS: ReadonlyArray<{ bin: string; pkg: string }> = [
  { bin: 'wrk', pkg: 'wrk' },
  { bin: 'nginx', pkg: 'nginx-light' },
];

export function findBinary(bin: string): string | null {
  const candidates = (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/local/sbin', '/sbin']);
  for (const dir of candidates) {
    if (!dir) continue;
    const file = path.join(dir, bin);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** The wrk and nginx binaries, or an error naming the Debian packages to install. */
export function requireTools(): { wrk: string; nginx: string } {
  const found = new Map<string, string>();
  const missing: string[] = [];
  for (const tool of TOOLS) {
    const file = findBinary(tool.bin);
    if (file) found.set(tool.bin, file);
    else missing.push(`${tool.bin} (Debian package ${tool.pkg})`);
  }
  if (missing.length > 0) {
    throw new Error(`missing ${missing.join(' and ')}: install with  apt-get install -y nginx-light wrk`);
  }
  return { wrk: found.get('wrk')!, nginx: found.get('nginx')! };
}

// ---- HTTP ----

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export interface Reply {
  status: number;
  body: string;
}

/** One GET on a fresh connection (no keep-alive), with the given Host header. */
export function httpGet(port: number, host: string, urlPath = '/', timeoutMs = 10_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: LOOPBACK, port, path: urlPath, method: 'GET', headers: { host }, agent: false, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.once('timeout', () => req.destroy(new Error(`GET ${host}${urlPath} timed out after ${timeoutMs}ms`)));
    req.once('error', reject);
    req.end();
  });
}

/**
 * Hibernated -> first 200 through the kernel's proxy (`port`), ms, for `cycles` cycles after one warm-up cycle
 * that is not kept. The pause after each hibernation keeps the wake from overlapping the stop.
 */
export async function coldStarts(kernel: Kernel, instance: Instance, port: number, host: string, urlPath: string, cycles: number): Promise<number[]> {
  const cold: number[] = [];
  for (let cycle = 0; cycle <= cycles; cycle++) {
    await kernel.hibernate(instance, 'benchmark');
    await sleep(100);
    const started = performance.now();
    const reply = await httpGet(port, host, urlPath);
    if (reply.status !== 200) throw new Error(`cold request answered ${reply.status}: ${reply.body.slice(0, 200)}`);
    if (cycle > 0) cold.push(performance.now() - started);
  }
  return cold;
}

/** Polls until a GET answers 200, or throws after `timeoutMs` with the last error. */
export async function waitForOk(port: number, host: string, timeoutMs: number, what: string, urlPath = '/'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no attempt';
  while (Date.now() < deadline) {
    try {
      const reply = await httpGet(port, host, urlPath, Math.max(100, deadline - Date.now()));
      if (reply.status === 200) return;
      last = `HTTP ${reply.status}: ${reply.body.slice(0, 200)}`;
    } catch (error) {
      last = (error as Error).message;
    }
    await sleep(20);
  }
  throw new Error(`${what} did not answer 200 within ${timeoutMs}ms (last: ${last})`);
}

// ---- ten serve ----

export interface TenServe {
  child: ManagedChild;
  port: number;
  dataDir: string;
  /** SIGTERM (graceful: instances stop too), then cleans up any instance process left behind. */
  stop(): Promise<void>;
}

/**
 * Starts `node [nodeArgs] bin/ten.mjs serve --config <file> --port 0` in its own process and resolves with the
 * port it printed. Its log level is `warn` unless TENEMENT_LOG_LEVEL says otherwise.
 */
export async function startTenServe(options: {
  config: string;
  dataDir: string;
  nodeArgs?: readonly string[];
  timeoutMs?: number;
  /** The script to run (default: the compiled package, built when stale; BENCH_TEN_SOURCES=1 the sources). */
  script?: string;
}): Promise<TenServe> {
  const child = startChild(process.execPath, [...(options.nodeArgs ?? []), options.script ?? defaultServeScript(), 'serve', '--config', options.config, '--port', '0'], {
    cwd: ROOT,
    // Its context (cli/context-file.ts) goes next to its data, not into the user's own ~/.config/tenement.
    env: { ...process.env, TENEMENT_LOG_LEVEL: process.env.TENEMENT_LOG_LEVEL ?? 'warn', XDG_CONFIG_HOME: path.join(path.dirname(options.dataDir), 'xdg-config') },
  });
  const timeoutMs = options.timeoutMs ?? 20_000;
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`ten serve printed no address within ${timeoutMs}ms`)), timeoutMs);
    const onData = (): void => {
      const match = /tenement serving .* on http:\/\/[^:\s]+:(\d+)/.exec(child.output());
      if (match) {
        cleanup();
        resolve(Number(match[1]));
      }
    };
    const onExit = (): void => fail(new Error('ten serve exited during start-up'));
    const cleanup = (): void => {
      clearTimeout(timer);
      child.process.stderr?.off('data', onData);
      child.process.off('exit', onExit);
    };
    const fail = (error: Error): void => {
      cleanup();
      void child.stop('SIGKILL');
      reject(new Error(`${error.message}\n--- ten serve output ---\n${child.output()}`));
    };
    child.process.stderr?.on('data', onData);
    child.process.once('exit', onExit);
  });
  return {
    child,
    port,
    dataDir: options.dataDir,
    async stop() {
      await child.stop('SIGTERM', 15_000);
      killLeftovers(path.join(options.dataDir, 'instances'));
    },
  };
}

/** Instance processes whose DATA_DIR is under `instancesRoot` (found through /proc), SIGKILLed. */
export function killLeftovers(instancesRoot: string): number {
  return killOrphans(instancesRoot).length;
}

// ---- nginx ----

export interface Nginx {
  child: ManagedChild;
  port: number;
  stop(): Promise<void>;
}

/** nginx as a reverse proxy to one loopback upstream, configured like the research note (see bench/README.md). */
export async function startNginx(binary: string, upstreamPort: number, dir: string, checkHost: string): Promise<Nginx> {
  const port = await freePort();
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `# generated by bench/lib.ts
worker_processes 1;
daemon off;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${path.join(dir, 'client_body')};
  proxy_temp_path ${path.join(dir, 'proxy')};
  fastcgi_temp_path ${path.join(dir, 'fastcgi')};
  uwsgi_temp_path ${path.join(dir, 'uwsgi')};
  scgi_temp_path ${path.join(dir, 'scgi')};
  upstream backend {
    server ${LOOPBACK}:${upstreamPort};
    keepalive 64;
  }
  server {
    listen ${LOOPBACK}:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
  }
}
`,
  );
  const child = startChild(binary, ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', conf]);
  try {
    await waitForOk(port, checkHost, 10_000, 'nginx');
  } catch (error) {
    await child.stop('SIGKILL');
    let log = '';
    try {
      log = readFileSync(path.join(dir, 'error.log'), 'utf8');
    } catch {
      // no log written
    }
    throw new Error(`${(error as Error).message}\n--- nginx output ---\n${child.output()}\n${log}`);
  }
  return { child, port, stop: () => child.stop('SIGTERM', 5_000) };
}

// ---- wrk ----

/** nginx as startNginx makes it, then with `workers` worker processes (its config rewritten, reloaded with SIGHUP). */
export async function startNginxWorkers(binary: string, backendPort: number, dir: string, workers: number, checkHost: string): Promise<Nginx> {
  mkdirSync(dir, { recursive: true });
  const nginx = await startNginx(binary, backendPort, dir, checkHost);
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, readFileSync(conf, 'utf8').replace(/worker_processes \d+;/, `worker_processes ${workers};`));
  process.kill(nginx.child.pid, 'SIGHUP');
  const deadline = Date.now() + 10_000;
  // The old worker exits once the new ones run.
  while (childPids(nginx.child.pid).length !== workers && Date.now() < deadline) await sleep(50);
  await waitForOk(nginx.port, checkHost, 10_000, `nginx with ${workers} workers`);
  return nginx;
}

export interface WrkResult {
  requestsPerSec: number;
  p50Ms: number;
  p75Ms: number;
  p90Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  socketErrors: number;
}

function toMs(value: string, unit: string): number {
  const n = Number(value);
  switch (unit) {
    case 'us':
      return n / 1000;
    case 'ms':
      return n;
    case 's':
      return n * 1000;
    case 'm':
      return n * 60_000;
    default:
      throw new Error(`unknown wrk time unit '${unit}'`);
  }
}

/** Parses `wrk --latency` output. */
export function parseWrk(text: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!rps) throw new Error(`cannot parse wrk output:\n${text}`);
  const percentile = (p: number): number => {
    const match = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
    if (!match) throw new Error(`no ${p}% latency in wrk output:\n${text}`);
    return toMs(match[1]!, match[2]!);
  };
  const requests = /(\d+) requests in/.exec(text);
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const socketErrors = socket ? socket.slice(1, 5).reduce((sum, n) => sum + Number(n), 0) : 0;
  return {
    requestsPerSec: Number(rps[1]),
    p50Ms: percentile(50),
    p75Ms: percentile(75),
    p90Ms: percentile(90),
    p99Ms: percentile(99),
    requests: requests ? Number(requests[1]) : 0,
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    socketErrors,
  };
}

export interface WrkOptions {
  binary: string;
  port: number;
  host: string;
  threads: number;
  connections: number;
  seconds: number;
  path?: string;
}

/** One bounded wrk run (killed if it overruns its duration by 15 s). */
export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const args = [
    `-t${options.threads}`,
    `-c${options.connections}`,
    `-d${options.seconds}s`,
    '--latency',
    '--timeout',
    '5s',
    '-H',
    `Host: ${options.host}`,
    `http://${LOOPBACK}:${options.port}${options.path ?? '/'}`,
  ];
  const child = startChild(options.binary, args);
  const timer = setTimeout(() => child.process.kill('SIGKILL'), (options.seconds + 15) * 1000);
  await child.exited;
  clearTimeout(timer);
  if (child.process.exitCode !== 0) throw new Error(`wrk ${args.join(' ')} failed:\n${child.output()}`);
  return parseWrk(child.output());
}

// ---- numbers ----

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export const mean = (values: readonly number[]): number => values.reduce((sum, v) => sum + v, 0) / values.length;

/** The median and 99th percentile of a set of samples. */
export interface Spread {
  p50: number;
  p99: number;
}

export const spread = (values: readonly number[]): Spread => ({ p50: median(values), p99: percentile(values, 99) });

/** Runs `run` `count` times, one after the other; the duration of each, in ms. */
export async function timeEach(count: number, run: () => unknown): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await run();
    samples.push(performance.now() - started);
  }
  return samples;
}

export const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
export const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
export const fmtPct = (ratio: number): string => (Number.isFinite(ratio) ? `${(ratio * 100).toFixed(0)}%` : 'n/a');

/** A table row: the figure's name, then its p50 and p99 with their unit ('n/a' for a figure not measured). */
export const spreadRow = (name: string, s: Spread | null, digits = 3, unit = 'ms'): string[] =>
  s ? [name, `${fmt(s.p50, digits)} ${unit}`, `${fmt(s.p99, digits)} ${unit}`] : [name, 'n/a', 'n/a'];

/** A plain text table, columns left-aligned except those whose cells all look numeric. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => /^[-+\d.,%x ]*(ms|MB|KB|B)?$/.test(r[i] ?? '')));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** Resident set size of a process from /proc, in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]) * 1024;
}

export const MB = 1024 * 1024;

/** Linux USER_HZ: /proc/<pid>/stat counts CPU time in these ticks. */
const CLOCK_TICKS_PER_SEC = 100;

/** User + system CPU time a process has used so far (all its threads), in microseconds; 0 once it is gone. */
export function cpuMicros(pid: number): number {
  return statCpuMicros(`/proc/${pid}/stat`) ?? 0;
}

export const cpuMicrosOf = (pids: readonly number[]): number => pids.reduce((sum, pid) => sum + cpuMicros(pid), 0);

/** CPU time of a process's main thread alone (its JavaScript event loop; worker threads excluded), in microseconds. */
export const mainThreadCpuMicros = (pid: number): number => statCpuMicros(`/proc/${pid}/task/${pid}/stat`) ?? 0;

/** CPU time used so far by each thread of this process (its /proc/self/task/<tid>/stat), in microseconds. */
export function threadCpuMicros(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const micros = statCpuMicros(`/proc/self/task/${tid}/stat`);
    if (micros !== null) out.set(Number(tid), micros); // null: the thread ended meanwhile
  }
  return out;
}

/** utime + stime of a /proc `stat` file (a process's, or one thread's), in microseconds; null when it is gone. */
function statCpuMicros(file: string): number | null {
  try {
    const stat = readFileSync(file, 'latin1');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / CLOCK_TICKS_PER_SEC;
  } catch {
    return null;
  }
}

/** Every descendant of a process, deepest last. */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  for (let queue = [pid]; queue.length > 0; ) {
    const children = childPids(queue.shift()!);
    out.push(...children);
    queue.push(...children);
  }
  return out;
}

/** Direct children of a process, found through /proc (no CONFIG_PROC_CHILDREN needed). */
export function childPids(parent: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === parent) found.push(pid);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** `parent`'s children with their command lines (NUL-separated, as /proc has them); one gone meanwhile is left out. */
export function childCommandLines(parent: number): Array<{ pid: number; cmdline: string }> {
  const children: Array<{ pid: number; cmdline: string }> = [];
  for (const pid of childPids(parent)) {
    try {
      children.push({ pid, cmdline: readFileSync(`/proc/${pid}/cmdline`, 'latin1') });
    } catch {
      // gone meanwhile
    }
  }
  return children;
}

/** A goal line: the measured figure, the goal, and whether it is met. */
export interface Goal {
  name: string;
  measured: string;
  goal: string;
  met: boolean;
}

export function writeJson(file: string, value: unknown): void {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}
