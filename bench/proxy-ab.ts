/**
 * The one-process proxy, A/B between built trees in one run (issue 13): a `ten serve` per tree, each running that
 * tree's compiled package (<tree>/dist/cli/main.js) in front of a backend of its own, wrk -c32 and -c1 rounds with
 * the order rotated so no tree always goes first. Per tree: throughput, proxy CPU per request (the serve process,
 * /proc stat), p50 at c32 and c1, and each against the first tree in the same round (medians of the rounds). On a
 * host whose load swings, the within-round ratios are what decide.
 *
 *   PROXY_AB_TREES=/tmp/old,/work/main node --import tsx bench/proxy-ab.ts
 *
 * (an old tree: `git archive <commit> | tar -x -C /tmp/old && ln -s $PWD/node_modules /tmp/old/node_modules &&
 * (cd /tmp/old && npm run build)`). PROXY_AB_PROFILE=1 writes a --cpu-prof of each tree's server to .bench-tmp/.
 * PROXY_AB_NODE_ARGS: node options per tree, `|` between trees (`|--max-semi-space-size=32`: the same tree twice,
 * the second with a larger young generation). PROXY_AB_PIN: settings.proxy.pin per tree, `,` between trees
 * (`busy,off`: the same tree pinned and not). Env: BENCH_ROUNDS (8), BENCH_SECONDS (2), BENCH_CONNECTIONS (32).
 */
import { existsSync, mkdirSync, readdirSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cpuMicros, fmt, freePort, isMain, makeTempDir, median, removeTempDir, requireTools, runWrk, ROOT, startTenServe, waitForOk, type TenServe } from './lib.ts';
import { writeServeConfig } from './proxy-setup.ts';

const HOST = 'bench.hello.localhost';

interface TreeRun {
  tree: string;
  serve: TenServe;
  rps: number[];
  cpu: number[];
  p50: number[];
  p50c1: number[];
}

async function start(tree: string, dir: string, index: number, profileDir: string | null, extraArgs: readonly string[], pin: 'busy' | 'off'): Promise<TenServe> {
  const script = path.join(tree, 'dist', 'cli', 'main.js');
  if (!existsSync(script)) throw new Error(`${tree}: no dist/cli/main.js (npm run build in it)`);
  const backendPort = await freePort();
  const sub = path.join(dir, `tree-${index}`);
  mkdirSync(sub, { recursive: true });
  const config = writeServeConfig(sub, backendPort, 1, 'tenement.config.json', 'spread', pin);
  const nodeArgs = [...extraArgs, ...(profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-interval', '250'] : [])];
  const serve = await startTenServe({ config, dataDir: path.join(sub, 'data'), script, nodeArgs });
  await waitForOk(serve.port, HOST, 20_000, `${HOST} through ${tree}`);
  return serve;
}

export async function runProxyAb(trees: readonly string[], log: (line: string) => void): Promise<void> {
  const rounds = Number(process.env.BENCH_ROUNDS ?? 8);
  const seconds = Number(process.env.BENCH_SECONDS ?? 2);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 32);
  const profile = process.env.PROXY_AB_PROFILE === '1';
  const tools = requireTools();
  const dir = makeTempDir('proxy-ab');
  const runs: TreeRun[] = [];
  const argsPerTree = (process.env.PROXY_AB_NODE_ARGS ?? '').split('|').map((args) => args.split(' ').filter(Boolean));
  const pinPerTree = (process.env.PROXY_AB_PIN ?? '').split(',').map((pin) => (pin.trim() === 'off' ? 'off' : 'busy'));
  try {
    for (const [i, tree] of trees.entries()) {
      const profileDir = profile ? path.join(dir, `prof-${i}`) : null;
      const args = argsPerTree[i] ?? [];
      const pin = pinPerTree[i] ?? 'busy';
      const label = `${tree}${args.length > 0 ? ` ${args.join(' ')}` : ''}${pin === 'off' ? ' (proxy.pin off)' : ''}`;
      runs.push({ tree: label, serve: await start(tree, dir, i, profileDir, args, pin), rps: [], cpu: [], p50: [], p50c1: [] });
    }
    const wrk = async (run: TreeRun, conns: number, secs: number): Promise<{ rps: number; cpu: number; p50: number }> => {
      const before = cpuMicros(run.serve.child.pid);
      const result = await runWrk({ binary: tools.wrk, port: run.serve.port, host: HOST, threads: 1, connections: conns, seconds: secs });
      return { rps: result.requestsPerSec, cpu: (cpuMicros(run.serve.child.pid) - before) / Math.max(1, result.requests), p50: result.p50Ms };
    };
    for (const run of runs) await wrk(run, connections, 2);
    for (let r = 0; r < rounds; r++) {
      const order = runs.map((_, i) => runs[(i + r) % runs.length]!);
      for (const run of order) {
        const loaded = await wrk(run, connections, seconds);
        run.rps.push(loaded.rps);
        run.cpu.push(loaded.cpu);
        run.p50.push(loaded.p50);
      }
      for (const run of order) run.p50c1.push((await wrk(run, 1, 1)).p50);
      log(`round ${r + 1} (load ${os.loadavg()[0]!.toFixed(2)}): ${runs.map((run, i) => `#${i} ${fmt(run.rps.at(-1)!, 0)} req/s ${fmt(run.cpu.at(-1)!, 1)} us/req p50 ${fmt(run.p50.at(-1)!, 3)} ms`).join('  ')}`);
    }
    const base = runs[0]!;
    const ratio = (values: number[], of: number[]): string => fmt(median(values.map((v, i) => v / of[i]!)), 3);
    for (const [i, run] of runs.entries()) {
      log(
        `#${i} ${run.tree}: ${fmt(median(run.rps), 0)} req/s, ${fmt(median(run.cpu), 1)} us/req, p50 c32 ${fmt(median(run.p50), 3)} ms, p50 c1 ${fmt(median(run.p50c1), 3)} ms` +
          (i === 0 ? '' : `; vs #0 in-round medians: rps ${ratio(run.rps, base.rps)}x, cpu ${ratio(run.cpu, base.cpu)}x, p50 c32 ${ratio(run.p50, base.p50)}x`),
      );
    }
  } finally {
    for (const run of runs) await run.serve.stop();
    if (profile) {
      const keep = path.join(ROOT, '.bench-tmp');
      mkdirSync(keep, { recursive: true });
      for (const [i] of runs.entries()) {
        const profDir = path.join(dir, `prof-${i}`);
        const file = existsSync(profDir) ? readdirSync(profDir).find((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f)) : undefined;
        if (file) {
          copyFileSync(path.join(profDir, file), path.join(keep, `proxy-ab-${i}.cpuprofile`));
          log(`profile of #${i}: .bench-tmp/proxy-ab-${i}.cpuprofile`);
        }
      }
    }
    removeTempDir(dir);
  }
}

if (isMain(import.meta.url)) {
  const trees = (process.env.PROXY_AB_TREES ?? '').split(',').filter(Boolean);
  if (trees.length === 0) throw new Error('PROXY_AB_TREES=<tree>,<tree>: built trees to compare');
  await runProxyAb(trees, (line) => process.stdout.write(`${line}\n`));
}
