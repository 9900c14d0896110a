/**
 * Tracing A/B (issue 11): the same measurements as bench/otel.ts, but between source trees in one run, so a
 * change to plugins/otel can be judged on a host whose load swings (ratios within a run, interleaved rounds).
 *
 *   OTEL_AB_TREES=/path/to/old,/work/main node --import tsx bench/otel-ab.ts
 *
 * (an old tree: `git archive <commit> | tar -x -C /tmp/old && ln -s $PWD/node_modules /tmp/old/node_modules`)
 *
 * 1. Isolated: each tree's otel plugin calls for one request in a loop (bench/otel.ts tracedLoop), rounds
 *    alternating between the trees, against one receiver in another process: main-thread CPU per request
 *    over the same loop without tracing.
 * 2. In place (OTEL_AB_PLACE=1): a `ten serve` per tree with tracing on, and one with tracing off, wrk -c32
 *    rounds with the order rotated: each server's main-thread CPU per request (schedstat) and its throughput
 *    over the untraced one's in the same round, medians of the rounds.
 * Env: BENCH_ROUNDS (7), BENCH_SECONDS (2).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { childReceiver, tracedLoop, tracedLoopCpu } from './otel.ts';
import { BENCH_DIR, freePort, isMain, makeTempDir, median, removeTempDir, requireTools, runWrk, startTenServe, waitForOk, type TenServe } from './lib.ts';

const HOST = 'bench.hello.localhost';
const mainCpu = (pid: number): number => Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'latin1').split(' ', 1)[0]) / 1000;
const range = (values: number[]): string => `${median(values).toFixed(2)} (${Math.min(...values).toFixed(2)} to ${Math.max(...values).toFixed(2)})`;

type Tracing = Parameters<typeof tracedLoop>[0];

async function isolated(trees: string[], rounds: number, log: (line: string) => void): Promise<void> {
  const receiver = await childReceiver('ok');
  const tracings: Tracing[] = [];
  try {
    for (const tree of trees) {
      const { startTracing } = (await import(path.join(tree, 'plugins/otel/tracing.ts'))) as typeof import('../plugins/otel/tracing.ts');
      const { resolveTracing } = (await import(path.join(tree, 'plugins/otel/options.ts'))) as typeof import('../plugins/otel/options.ts');
      tracings.push(startTracing(resolveTracing({ endpoint: receiver.url, sampler: 'always_on' }, {})!, '0.0.0', () => {}));
    }
    for (const tracing of tracings) await tracedLoop(tracing, 20_000, true);
    const added = trees.map(() => [] as number[]);
    const addedAll = trees.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) {
      const base = await tracedLoopCpu(null, 20_000, false);
      // The order alternates: the tree measured first in a round is measured last in the next.
      const order = r % 2 === 0 ? trees.map((_, i) => i) : trees.map((_, i) => trees.length - 1 - i);
      for (const i of order) {
        const traced = await tracedLoopCpu(tracings[i]!, 20_000, true);
        added[i]!.push(traced.main - base.main);
        addedAll[i]!.push(traced.all - base.all);
      }
    }
    log('isolated, CPU tracing adds per request, us (median, range), main thread | all threads (GC helpers):');
    trees.forEach((tree, i) => log(`  ${tree}: ${range(added[i]!)} | ${range(addedAll[i]!)}`));
  } finally {
    for (const tracing of tracings) await Promise.race([tracing!.shutdown(), new Promise((resolve) => setTimeout(resolve, 2_000))]);
    receiver.close();
  }
}

async function inPlace(trees: string[], rounds: number, seconds: number, log: (line: string) => void): Promise<void> {
  const tools = requireTools();
  const dir = makeTempDir('otel-ab');
  const receiver = await childReceiver('ok');
  const targets: Array<{ name: string; tree: string; traced: boolean }> = [{ name: 'off', tree: trees.at(-1)!, traced: false }, ...trees.map((tree) => ({ name: tree, tree, traced: true }))];
  const servers: TenServe[] = [];
  try {
    for (const [i, target] of targets.entries()) {
      const port = await freePort();
      const config = path.join(dir, `${i}.json`);
      const otel = target.traced ? { otel: { endpoint: receiver.url, sampler: 'always_on' } } : {};
      writeFileSync(
        config,
        JSON.stringify({
          settings: { domain: 'localhost', port: 0, listen: '127.0.0.1', dataDir: path.join(dir, `d${i}`), portRange: { from: port, to: port }, healthInterval: '60s', ...otel },
          services: { hello: { command: process.execPath, args: [path.join(BENCH_DIR, 'fixtures', 'hello.mjs')], health: '/health', idleTimeout: false } },
          instances: { hello: ['bench'] },
        }),
      );
      servers.push(await startTenServe({ config, dataDir: path.join(dir, `d${i}`), script: path.join(target.tree, 'bin', 'ten.mjs') }));
      await waitForOk(servers[i]!.port, HOST, 20_000, target.name);
    }
    const wrk = (i: number, secs: number) => runWrk({ binary: tools.wrk, port: servers[i]!.port, host: HOST, threads: 1, connections: 32, seconds: secs });
    for (let i = 0; i < servers.length; i++) await wrk(i, 1);
    const cpu = targets.map(() => [] as number[]);
    const rps = targets.map(() => [] as number[]);
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < servers.length; k++) {
        const i = (k + r) % servers.length;
        const pid = servers[i]!.child.pid;
        const before = mainCpu(pid);
        const result = await wrk(i, seconds);
        cpu[i]!.push((mainCpu(pid) - before) / Math.max(1, result.requests));
        rps[i]!.push(result.requestsPerSec);
      }
    }
    log(`in place, wrk -c32 -d${seconds}s, ${rounds} rounds: main-thread CPU per request (us) and throughput over tracing off, medians of rounds:`);
    targets.forEach((target, i) => {
      const added = cpu[i]!.map((v, r) => v - cpu[0]![r]!);
      const ratio = rps[i]!.map((v, r) => v / rps[0]![r]!);
      log(`  ${target.traced ? `on, ${target.tree}` : 'off'}: ${median(cpu[i]!).toFixed(1)} us${i === 0 ? '' : `, +${range(added)} us over off, throughput ${range(ratio)}x of off`}`);
    });
  } finally {
    for (const server of servers) await server.stop();
    receiver.close();
    removeTempDir(dir);
  }
}

if (isMain(import.meta.url)) {
  const trees = (process.env.OTEL_AB_TREES ?? '').split(',').filter(Boolean).map((tree) => path.resolve(tree));
  if (trees.length === 0) throw new Error('OTEL_AB_TREES: a comma-separated list of source trees (each with node_modules)');
  const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
  const log = (line: string): void => void process.stdout.write(`${line}\n`);
  await isolated(trees, rounds, log);
  if (process.env.OTEL_AB_PLACE === '1') await inPlace(trees, rounds, Number(process.env.BENCH_SECONDS ?? 2), log);
  process.exit(0);
}
