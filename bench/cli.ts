/**
 * `ten` start-up: wall time of quick commands (`--help`, `ps`) as fresh processes, against bare `node -e ''` and
 * `node --import tsx -e ''` (what every `ten` pays before its own code) measured in the same run. The cases are
 * interleaved, one sample of each per round, so drift on a shared machine hits all alike.
 *
 *   node --import tsx bench/cli.ts      # or: npm run bench -- cli
 *   BENCH_CLI_RUNS=21                   # samples per case (default 11)
 */
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, TEN_BIN, fmt, isMain, makeTempDir, median, removeTempDir, startTenServe, table, type Goal, type TenServe } from './lib.ts';

export interface CliCase {
  name: string;
  medianMs: number;
  /** Against `node -e ''`. */
  vsNode: number;
  /** Against `node --import tsx -e ''`. */
  vsTsx: number;
}

export interface CliBenchResult {
  runs: number;
  nodeMs: number;
  tsxMs: number;
  cases: CliCase[];
  goals: Goal[];
}

/** `ten --help` and `ten <cmd> --help` within this factor of `node --import tsx -e ''`. */
const HELP_GOAL = 1.5;

interface Command {
  name: string;
  args: string[];
}

/** A user's environment: no TENEMENT_* variable of the bench's own shell decides where `ten ps` goes. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('TENEMENT_') && key !== 'NODE_OPTIONS'));
}

/** Runs one command to its exit; its wall time in ms. A failure (non-zero exit) is a failed benchmark. */
function timeOnce(command: Command, cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, command.args, { cwd, env: cleanEnv(), stdio: ['ignore', 'ignore', 'pipe'] });
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

/** `ten serve` with no services on a free loopback port, for `ten ps`, or why it could not start. */
async function startServer(dir: string): Promise<{ serve: TenServe; config: string; token: string } | { error: string }> {
  const dataDir = path.join(dir, 'data');
  const config = path.join(dir, 'tenement.config.json');
  writeFileSync(config, JSON.stringify({ settings: { domain: 'localhost', listen: '127.0.0.1', port: 0, dataDir }, services: {} }));
  try {
    const serve = await startTenServe({ config, dataDir });
    return { serve, config, token: readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim() };
  } catch (error) {
    return { error: (error as Error).message.split('\n')[0]! };
  }
}

export async function runCliBench(): Promise<CliBenchResult> {
  const runs = Number(process.env.BENCH_CLI_RUNS ?? 11);
  const dir = makeTempDir('cli');
  const server = await startServer(dir);
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
        { name: 'ten ps --server --token', args: [TEN_BIN, 'ps', '--server', url, '--token', server.token] },
        { name: 'ten ps --server --config', args: [TEN_BIN, 'ps', '--server', url, '--config', server.config] },
      );
    } else {
      process.stdout.write(`cli: skipping \`ten ps\` against a server: ${server.error}\n`);
    }

    const samples = new Map<string, number[]>(commands.map((c) => [c.name, []]));
    // One warm-up round (page cache, tsx's transform cache), not kept.
    for (const command of commands) await timeOnce(command, ROOT);
    for (let round = 0; round < runs; round++) {
      // Rotate the order each round so no case always runs right after the same one.
      for (let i = 0; i < commands.length; i++) {
        const command = commands[(i + round) % commands.length]!;
        samples.get(command.name)!.push(await timeOnce(command, ROOT));
      }
    }

    const nodeMs = median(samples.get(commands[0]!.name)!);
    const tsxMs = median(samples.get(commands[1]!.name)!);
    const cases = commands.map((c) => {
      const ms = median(samples.get(c.name)!);
      return { name: c.name, medianMs: ms, vsNode: ms / nodeMs, vsTsx: ms / tsxMs };
    });
    const helps = cases.filter((c) => c.name.endsWith('--help'));
    const worst = helps.reduce((a, b) => (b.vsTsx > a.vsTsx ? b : a));
    const goals: Goal[] = [
      { name: `slowest \`${worst.name}\` vs node --import tsx`, measured: `${fmt(worst.vsTsx)}x`, goal: `<= ${HELP_GOAL}x`, met: worst.vsTsx <= HELP_GOAL },
    ];
    return { runs, nodeMs, tsxMs, cases, goals };
  } finally {
    if ('serve' in server) await server.serve.stop();
    removeTempDir(dir);
  }
}

export function formatCli(r: CliBenchResult): string {
  const rows = r.cases.map((c) => [c.name, `${fmt(c.medianMs, 0)} ms`, `${fmt(c.vsNode)}x`, `${fmt(c.vsTsx)}x`]);
  return [
    `== ten start-up: median wall time of ${r.runs} fresh processes each ==`,
    table(['command', 'median', "vs node -e ''", 'vs node+tsx'], rows),
  ].join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runCliBench();
  process.stdout.write(`\n${formatCli(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'} ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
