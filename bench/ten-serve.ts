/** `ten serve` in a process of its own for a bench: which build it runs, starting it, and cleaning up after it. */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { killOrphans } from '../core/orphans.ts';
import { ROOT, TEN_BIN, tenEntry, type TenEntry } from './base.ts';
import { startChild, type ManagedChild } from './children.ts';

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
