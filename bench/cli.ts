/**
 * `ten` start-up: wall time of quick commands (`--help`, `ps`) as fresh processes, against bare `node -e ''` and
 * `node --import tsx -e ''` (what a `ten` run from the sources pays before its own code) measured in the same run.
 * The compiled package (dist/cli/main.js) is measured when it is built, else the sources through bin/ten.mjs (the
 * report says which). The cases are interleaved, one sample of each per round, so drift on a shared machine hits
 * all alike.
 *
 *   node --import tsx bench/cli.ts      # or: npm run bench -- cli
 *   BENCH_CLI_RUNS=21                   # samples per case (default 11)
 *   BENCH_CLI_BEFORE=/tmp/old-checkout  # also measure that checkout's built dist/ (before/after in one run)
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, fmt, isMain, makeTempDir, median, removeTempDir, startTenServe, table, tenEntry, type Goal, type TenServe } from './lib.ts';

export interface CliCase {
  name: string;
  medianMs: number;
  /** Median user + system CPU time of the process, ms (null without python3 to read it). */
  cpuMs: number | null;
  /** CPU time against `node -e ''`'s: steady on a loaded machine, where wall time mostly measures waiting. */
  cpuVsNode: number | null;
  /** Against `node -e ''`. */
  vsNode: number;
  /** Against `node --import tsx -e ''`. */
  vsTsx: number;
}

export interface CliBenchResult {
  runs: number;
  /** What ran: the compiled package or the sources. */
  measured: string;
  nodeMs: number;
  tsxMs: number;
  cases: CliCase[];
  goals: Goal[];
}

/** The compiled package's `ten --help` and `ten ps` within this factor of `node -e ''` (issue 17). */
const COMPILED_GOAL = 1.3;
/** The sources' `ten --help` and `ten <cmd> --help` within this factor of `node --import tsx -e ''`. */
const HELP_GOAL = 1.5;

interface Command {
  name: string;
  args: string[];
  /** Where it runs (default the repository). */
  cwd?: string;
  /** Added to the environment (TENEMENT_DIST=1: bin/ten.mjs runs a checkout's dist/). */
  env?: Record<string, string>;
}

/** A user's environment: no TENEMENT_* variable of the bench's own shell decides where `ten ps` goes. */
function cleanEnv(xdgConfigHome: string): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('TENEMENT_') && key !== 'NODE_OPTIONS'));
  // The bench's own server is the current context (startTenServe records it there), never the user's.
  return { ...env, XDG_CONFIG_HOME: xdgConfigHome };
}

/** Runs one command to its exit; its wall time in ms. A failure (non-zero exit) is a failed benchmark. */
function timeOnce(command: Command, cwd: string, env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, command.args, { cwd: command.cwd ?? cwd, env: { ...env, ...command.env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString('utf8')).slice(-4096)));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const ms = performance.now() - started;
      if (code === 0) resolve(ms);
      else reject(new Error(`${command.name} exited ${code ?? signal}: ${stderr.trim()}`));
    });
  });
}

/**
 * The CPU time (user + system) a command's process used, in ms, read with getrusage(RUSAGE_CHILDREN) by a small
 * python3 parent (Node has no way to read a child's rusage). Resolves null when python3 is missing. The reading
 * before the run is subtracted: a python3 that is a shim (pyenv's is a shell script) reaped children of its own
 * before it became python, ~280 ms here, which made every CPU ratio look closer to 1 than it was.
 */
const CPU_READER = 'import resource,subprocess,sys\ndef cpu():\n  u=resource.getrusage(resource.RUSAGE_CHILDREN)\n  return u.ru_utime+u.ru_stime\nb=cpu()\nr=subprocess.run(sys.argv[1:],stdout=subprocess.DEVNULL,stderr=subprocess.DEVNULL)\nprint((cpu()-b)*1000)\nsys.exit(r.returncode)';
function cpuOnce(command: Command, cwd: string, env: NodeJS.ProcessEnv): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn('python3', ['-c', CPU_READER, process.execPath, ...command.args], { cwd: command.cwd ?? cwd, env: { ...env, ...command.env }, stdio: ['ignore', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.once('error', () => resolve(null));
    child.once('close', (code) => {
      const ms = Number(stdout.trim());
      if (code === 0 && Number.isFinite(ms)) resolve(ms);
      else reject(new Error(`${command.name} (CPU time) exited ${code}`));
    });
  });
}

/** The `ten` bin a checkout's package.json names (what `npm install` links), relative to the checkout. */
function packageBin(checkout: string): string {
  const manifest = JSON.parse(readFileSync(path.join(checkout, 'package.json'), 'utf8')) as { bin?: string | Record<string, string> };
  const bin = typeof manifest.bin === 'string' ? manifest.bin : manifest.bin?.ten;
  if (!bin) throw new Error(`${checkout}/package.json names no ten bin`);
  return path.normalize(bin);
}

/** `ten serve` with no services on a free loopback port, for `ten ps`, or why it could not start. */
async function startServer(dir: string, script: string): Promise<{ serve: TenServe; config: string; token: string } | { error: string }> {
  const dataDir = path.join(dir, 'data');
  const config = path.join(dir, 'tenement.config.json');
  writeFileSync(config, JSON.stringify({ settings: { domain: 'localhost', listen: '127.0.0.1', port: 0, dataDir }, services: {} }));
  try {
    const serve = await startTenServe({ config, dataDir, script });
    return { serve, config, token: readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim() };
  } catch (error) {
    return { error: (error as Error).message.split('\n')[0]! };
  }
}

export async function runCliBench(): Promise<CliBenchResult> {
  const runs = Number(process.env.BENCH_CLI_RUNS ?? 11);
  const dir = makeTempDir('cli');
  const entry = tenEntry();
  const TEN_BIN = entry.script;
  const server = await startServer(dir, TEN_BIN);
  try {
    const commands: Command[] = [
      { name: "node -e ''", args: ['-e', ''] },
      { name: "node --import tsx -e ''", args: ['--import', 'tsx', '-e', ''] },
      { name: 'ten --help', args: [TEN_BIN, '--help'] },
      { name: 'ten --version', args: [TEN_BIN, '--version'] },
      { name: 'ten ps --help', args: [TEN_BIN, 'ps', '--help'] },
      { name: 'ten config --help', args: [TEN_BIN, 'config', '--help'] },
      { name: 'ten doctor --help', args: [TEN_BIN, 'doctor', '--help'] },
      { name: 'ten logs --help', args: [TEN_BIN, 'logs', '--help'] },
    ];
    if ('serve' in server) {
      const url = `http://127.0.0.1:${server.serve.port}`;
      // With --token nothing local is read; with only --config the token comes from the config's dataDir.
      commands.push(
        // From a folder with no config: the server is the current context `ten serve` recorded.
        { name: 'ten ps (context)', args: [TEN_BIN, 'ps'], cwd: makeTempDir('cli-no-config') },
        { name: 'ten ps --server --token', args: [TEN_BIN, 'ps', '--server', url, '--token', server.token] },
        { name: 'ten ps --server --config', args: [TEN_BIN, 'ps', '--server', url, '--config', server.config] },
        // In the server's own folder: the config found from the cwd gives the endpoint and the token.
        { name: 'ten ps (folder with config)', args: [TEN_BIN, 'ps'], cwd: dir },
      );
    } else {
      process.stdout.write(`cli: skipping \`ten ps\` against a server: ${server.error}\n`);
    }

    // What an installed `ten` runs: the package's bin (package.json "bin": bin/ten.cjs, CommonJS since session 9,
    // which runs the quick commands from dist/cli/quick.cjs; bin/ten.mjs before it, one more ES module), on the
    // compiled dist/ (TENEMENT_DIST=1). The goals judge these too.
    // BENCH_CLI_BEFORE=<another checkout, built>: its compiled `ten` beside ours in the same rounds (before/after),
    // its main.js and its own bin alike.
    const viaBin = (checkout: string, prefix: string): Command[] =>
      commands
        .filter((c) => c.args[0] === TEN_BIN && (c.name === 'ten --help' || c.name.startsWith('ten ps (')))
        .map((c) => ({ ...c, name: `${prefix}${c.name} via ${packageBin(checkout)}`, args: [path.join(checkout, packageBin(checkout)), ...c.args.slice(1)], env: { TENEMENT_DIST: '1' } }));
    if (entry.compiled) commands.push(...viaBin(ROOT, ''));
    const before = process.env.BENCH_CLI_BEFORE;
    if (before) {
      const script = path.join(path.resolve(before), 'dist', 'cli', 'main.js');
      const old = commands.filter((c) => c.args[0] === TEN_BIN && (c.name === 'ten --help' || c.name.startsWith('ten ps (')));
      const oldViaBin = viaBin(path.resolve(before), 'before: ');
      for (const c of old) commands.push({ ...c, name: `before: ${c.name}`, args: [script, ...c.args.slice(1)] });
      commands.push(...oldViaBin);
    }
    const samples = new Map<string, number[]>(commands.map((c) => [c.name, []]));
    const cpuSamples = new Map<string, number[]>(commands.map((c) => [c.name, []]));
    // One warm-up round (page cache, tsx's transform cache), not kept.
    const env = cleanEnv(path.join(dir, 'xdg-config'));
    for (const command of commands) await timeOnce(command, ROOT, env);
    for (let round = 0; round < runs; round++) {
      // Rotate the order each round so no case always runs right after the same one.
      for (let i = 0; i < commands.length; i++) {
        const command = commands[(i + round) % commands.length]!;
        samples.get(command.name)!.push(await timeOnce(command, ROOT, env));
        const cpu = await cpuOnce(command, ROOT, env);
        if (cpu !== null) cpuSamples.get(command.name)!.push(cpu);
      }
    }

    const nodeMs = median(samples.get(commands[0]!.name)!);
    const tsxMs = median(samples.get(commands[1]!.name)!);
    const cpuMedian = (name: string): number | null => (cpuSamples.get(name)!.length > 0 ? median(cpuSamples.get(name)!) : null);
    const nodeCpu = cpuMedian(commands[0]!.name);
    const cases = commands.map((c) => {
      const ms = median(samples.get(c.name)!);
      const cpuMs = cpuMedian(c.name);
      return { name: c.name, medianMs: ms, cpuMs, cpuVsNode: cpuMs !== null && nodeCpu ? cpuMs / nodeCpu : null, vsNode: ms / nodeMs, vsTsx: ms / tsxMs };
    });
    const goals: Goal[] = [];
    if (entry.compiled) {
      // Judged on wall time, and on CPU time when it is known: on a loaded machine wall time mostly measures waiting.
      for (const c of cases.filter((c) => c.name.startsWith('ten --help') || c.name.startsWith('ten ps'))) {
        goals.push({ name: `\`${c.name}\` wall time vs node -e ''`, measured: `${fmt(c.vsNode)}x`, goal: `<= ${COMPILED_GOAL}x`, met: c.vsNode <= COMPILED_GOAL });
        if (c.cpuVsNode !== null) {
          goals.push({ name: `\`${c.name}\` CPU time vs node -e ''`, measured: `${fmt(c.cpuVsNode)}x`, goal: `<= ${COMPILED_GOAL}x`, met: c.cpuVsNode <= COMPILED_GOAL });
        }
      }
    } else {
      const helps = cases.filter((c) => c.name.endsWith('--help'));
      const worst = helps.reduce((a, b) => (b.vsTsx > a.vsTsx ? b : a));
      goals.push({ name: `slowest \`${worst.name}\` vs node --import tsx (sources)`, measured: `${fmt(worst.vsTsx)}x`, goal: `<= ${HELP_GOAL}x`, met: worst.vsTsx <= HELP_GOAL });
    }
    return { runs, measured: entry.label, nodeMs, tsxMs, cases, goals };
  } finally {
    if ('serve' in server) await server.serve.stop();
    removeTempDir(dir);
  }
}

export function formatCli(r: CliBenchResult): string {
  const rows = r.cases.map((c) => [
    c.name,
    `${fmt(c.medianMs, 0)} ms`,
    `${fmt(c.vsNode)}x`,
    `${fmt(c.vsTsx)}x`,
    c.cpuMs === null ? '-' : `${fmt(c.cpuMs, 0)} ms`,
    c.cpuVsNode === null ? '-' : `${fmt(c.cpuVsNode)}x`,
  ]);
  return [
    `== ten start-up: median wall time of ${r.runs} fresh processes each; ${r.measured} ==`,
    table(['command', 'median', "vs node -e ''", 'vs node+tsx', 'CPU', "CPU vs node -e ''"], rows),
  ].join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runCliBench();
  process.stdout.write(`\n${formatCli(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'} ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
