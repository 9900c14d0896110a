/**
 * The wasm tier: cold start, warm latency, instantiation and throughput of examples/wasm-c (a C CGI function,
 * WASI preview 1) in the kernel's worker pool. Baselines from the same run: the same module run in-thread
 * (what the pool adds), and the function's own loopback server without the proxy (what the proxy adds).
 *
 *   node --import tsx bench/wasm.ts          (or: npm run bench -- wasm)
 *
 * Needs clang with wasi-libc (apt: clang lld wasi-libc libclang-rt-14-dev-wasm32); wrk for the throughput rows
 * (apt: wrk; skipped without it). Env: BENCH_WASM_CYCLES (15 cold starts), BENCH_WASM_SAMPLES (300).
 *
 * Component (TypeScript) figures: `ts` in the result, filled by `runComponentFigures` below (see its comment).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { defaultPlugins } from '../cli/default-plugins.ts';
import { createTestKernel, type TestKernel } from '../core/test-kernel.ts';
import { compileCommand } from '../core/wasm/engine.ts';
import { v8Linker } from './v8-instance.ts';
import { sharedWasmPool } from '../core/wasm/shared.ts';
import { runWasiCommand } from '../core/wasm/wasi-run.ts';
import type { WasmPool } from '../core/wasm/pool.ts';
import { formatEngines, runEngineComparison, type EngineComparison } from './wasm-engines.ts';
import {
  type Goal,
  type Spread,
  ROOT,
  coldStarts,
  findBinary,
  fmt,
  fmtInt,
  httpGet,
  isMain,
  makeTempDir,
  median,
  removeTempDir,
  runWrk,
  spread,
  spreadRow,
  table,
  timeEach,
  waitForOk,
} from './lib.ts';

const HOST = 'bench.hello-c.localhost';
const CAP_PAGES = 512;

export interface CFigures {
  moduleBytes: number;
  compileMs: number;
  /** A new WASI plus `new WebAssembly.Instance` with its imports, main thread, µs. */
  instantiateUs: Spread;
  /** Instantiate + _start + captured CGI output, in-thread (no pool), ms. */
  inThreadRunMs: Spread;
  /** The same through the pool (one call at a time), ms. */
  poolRunMs: Spread;
  /** Hibernated -> first 200 through the proxy, ms. */
  coldStartMs: Spread & { cycles: number };
  /** Sequential GETs on fresh connections through the proxy / to the function's own server, ms. */
  warmProxyMs: Spread;
  warmDirectMs: Spread;
  /** 16 in flight, median of 3 interleaved 1 s rounds: pool alone (ops/s), wrk -c16 over HTTP (req/s; null without wrk). */
  poolOpsPerSec: number;
  directRps: number | null;
  proxyRps: number | null;
  /** CPU µs of the Tenement process (all threads) per completed call on each of those paths. */
  cpuUsPerCall: { pool: number; direct: number | null; proxy: number | null };
}

export interface WasmBenchResult {
  c: CFigures;
  /** TypeScript component figures (examples/wasm-hello); null until that section is filled. */
  ts: Record<string, number> | null;
  /** V8 against wasmtime on the same module (bench/wasm-engines.ts); null without the wasmtime library. */
  engines: EngineComparison | null;
  goals: Goal[];
}

function buildHandler(dir: string): string {
  const out = path.join(dir, 'handler.wasm');
  try {
    execFileSync('clang', ['--target=wasm32-wasi', '-O2', '-s', path.join(ROOT, 'examples', 'wasm-c', 'handler.c'), '-o', out], { stdio: 'pipe' });
  } catch (error) {
    throw new Error(`cannot build examples/wasm-c with clang (apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32): ${(error as Error).message.split('\n')[0]}`);
  }
  return out;
}

/** Calls in flight at once for `seconds`; returns completed calls per second. */
async function closedLoop(concurrency: number, seconds: number, call: () => Promise<unknown>): Promise<number> {
  const until = performance.now() + seconds * 1000;
  let done = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        await call();
        done++;
      }
    }),
  );
  return done / ((performance.now() - started) / 1000);
}

async function cFigures(kernel: TestKernel, pool: WasmPool, wasmFile: string, log: (line: string) => void): Promise<CFigures> {
  const samples = Number(process.env.BENCH_WASM_SAMPLES ?? 300);
  const cycles = Number(process.env.BENCH_WASM_CYCLES ?? 15);
  const bytes = new Uint8Array(readFileSync(wasmFile));
  const compileStarted = performance.now();
  const module = compileCommand(bytes, CAP_PAGES);
  const compileMs = performance.now() - compileStarted;
  const input = { args: ['hello-c'], env: { REQUEST_METHOD: 'GET', PATH_INFO: '/', DATA_DIR: '/data' }, stdin: new Uint8Array(), dataDir: null, preopenAs: '/data', capPages: CAP_PAGES };

  // Linked the way core/wasm/wasi-run.ts links it: a fresh WASI per request, every import a JS closure, a lent memory.
  const linker = await v8Linker(module);
  const instantiateUs = (await timeEach(samples, () => linker.release(linker.make()))).map((ms) => ms * 1000);
  const devNull = openSync('/dev/null', 'r+');
  const inThread = await timeEach(samples, () => runWasiCommand(module, input, devNull));
  closeSync(devNull);
  const compiled = { hash: 'bench-c', module, capPages: CAP_PAGES };
  const poolCall = () => pool.runWasi(compiled, { ...input, instanceKey: 'bench', deadlineMs: 5_000 });
  await timeEach(20, poolCall);
  const poolRun = await timeEach(samples, poolCall);
  log(`  in-thread run p50 ${fmt(median(inThread), 3)} ms, through the pool ${fmt(median(poolRun), 3)} ms`);

  const port = Number(new URL(kernel.url).port);
  await waitForOk(port, HOST, 20_000, `${HOST} through the kernel`);
  const instance = kernel.instances.get('hello-c', 'bench')!;
  const cold = await coldStarts(kernel, instance, port, HOST, '/', cycles);
  log(`  cold start (hibernated -> 200) p50 ${fmt(median(cold), 2)} ms over ${cycles} cycles`);
  const fnPort = instance.handle!.address.port;
  const warmProxy = await timeEach(samples, () => httpGet(port, HOST, '/'));
  const warmDirect = await timeEach(samples, () => httpGet(fnPort, HOST, '/'));

  // Interleaved rounds, medians: background load on a shared machine shifts within seconds.
  const wrk = findBinary('wrk');
  if (!wrk) log('  wrk not found (apt-get install wrk): HTTP throughput rows skipped');
  // CPU of this process (main thread and pool workers) per completed call: steadier than throughput on a
  // shared machine, and it says what each hop costs.
  const poolRounds: number[] = [];
  const directRounds: number[] = [];
  const proxyRounds: number[] = [];
  const cpu = { pool: [] as number[], direct: [] as number[], proxy: [] as number[] };
  const cpuPer = async (rounds: number[], into: number[], run: () => Promise<number>, seconds: number) => {
    const before = process.cpuUsage();
    const rate = await run();
    const used = process.cpuUsage(before);
    rounds.push(rate);
    into.push((used.user + used.system) / (rate * seconds));
  };
  for (let round = 0; round < 3; round++) {
    await cpuPer(poolRounds, cpu.pool, () => closedLoop(16, 1, poolCall), 1);
    if (!wrk) continue;
    await cpuPer(directRounds, cpu.direct, async () => (await runWrk({ binary: wrk, port: fnPort, host: HOST, threads: 1, connections: 16, seconds: 1 })).requestsPerSec, 1);
    await cpuPer(proxyRounds, cpu.proxy, async () => (await runWrk({ binary: wrk, port, host: HOST, threads: 1, connections: 16, seconds: 1 })).requestsPerSec, 1);
  }
  const poolOpsPerSec = median(poolRounds);
  const directRps = wrk ? median(directRounds) : null;
  const proxyRps = wrk ? median(proxyRounds) : null;
  const cpuUsPerCall = { pool: median(cpu.pool), direct: wrk ? median(cpu.direct) : null, proxy: wrk ? median(cpu.proxy) : null };
  return {
    moduleBytes: bytes.length,
    compileMs,
    instantiateUs: spread(instantiateUs),
    inThreadRunMs: spread(inThread),
    poolRunMs: spread(poolRun),
    coldStartMs: { ...spread(cold), cycles },
    warmProxyMs: spread(warmProxy),
    warmDirectMs: spread(warmDirect),
    poolOpsPerSec,
    directRps,
    proxyRps,
    cpuUsPerCall,
  };
}

/**
 * TypeScript component figures (examples/wasm-hello), for engineer B: measure with the same kernel (add the
 * service to the config in runWasmBench) and return them keyed by figure name; formatWasm prints every key.
 */
async function runComponentFigures(log: (line: string) => void): Promise<Record<string, number> | null> {
  // bench/wasm-component.ts (engineer B) measures with its own kernel: a TS function and a native Node server.
  const { runComponentBench } = await import('./wasm-component.ts');
  const r = await runComponentBench({ log });
  const figures: Record<string, number> = {
    'TS instantiate p50 (ms)': r.instantiateMs.p50,
    'TS warm call in-thread p50 (µs)': r.warmCallUs.p50,
    'TS RSS per live instance (MB)': r.rssPerInstanceMb,
    'TS prepare from disk (ms)': r.prepareFromDiskMs,
  };
  if (r.coldStartMs) figures['TS cold start hibernated -> 200 p50 (ms)'] = r.coldStartMs.p50;
  if (r.warmProxyMs) figures['TS warm GET via proxy p50 (ms)'] = r.warmProxyMs.p50;
  if (r.tsRps !== null && r.nativeRps !== null) {
    figures['TS req/s via proxy (wrk -c16)'] = r.tsRps;
    figures['native Node req/s via proxy (wrk -c16)'] = r.nativeRps;
    figures['TS / native req/s'] = r.tsRps / r.nativeRps;
  }
  return figures;
}

export async function runWasmBench(options: { log?: (line: string) => void } = {}): Promise<WasmBenchResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const dir = makeTempDir('wasm');
  const wasmFile = buildHandler(dir);
  const kernel = await createTestKernel({
    plugins: defaultPlugins,
    config: {
      settings: { port: 0, listen: '127.0.0.1', dataDir: path.join(dir, 'data') },
      services: { 'hello-c': { isolation: 'wasm', module: wasmFile, limits: { memory: `${CAP_PAGES * 64}KiB` }, idleTimeout: false } },
      instances: { 'hello-c': ['bench'] },
      pluginOptions: { metrics: { processMetrics: false } },
    },
  });
  try {
    log('wasm: examples/wasm-c (C, WASI preview 1 CGI) in the worker pool');
    const c = await cFigures(kernel, sharedWasmPool(kernel), wasmFile, log);
    const ts = await runComponentFigures(log);
    const engines = await runEngineComparison({ log });
    const addedByPool = c.poolRunMs.p50 - c.inThreadRunMs.p50;
    const wt = engines?.figures.wasmtime;
    return {
      c,
      ts,
      engines,
      goals: [
        ...(wt
          ? [
              { name: 'C code on restart, wasmtime (deserialized artifact)', measured: `${fmt(wt.reloadMs, 3)} ms`, goal: '< 1 ms', met: wt.reloadMs < 1 },
              { name: `C cold start on wasmtime: what hibernation adds over a native GET after the same pause (p50 of ${wt.cold.pairs} pairs)`, measured: `${fmt(wt.cold.added.p50, 2)} ms`, goal: '< 1 ms', met: wt.cold.added.p50 < 1 },
              { name: 'C cold start hibernated -> 200 end to end, wasmtime (includes the host\'s idle wake-up)', measured: `${fmt(wt.cold.cold.p50, 2)} ms`, goal: '< 1 ms', met: wt.cold.cold.p50 < 1 },
              { name: 'runaway stopped after its deadline, wasmtime (worker kept)', measured: `+${fmt(wt.runawayOvershootMs, 1)} ms`, goal: '< 10 ms', met: wt.runawayOvershootMs < 10 },
            ]
          : []),
        { name: 'C cold start (hibernated -> 200)', measured: `${fmt(c.coldStartMs.p50, 2)} ms`, goal: '< 10 ms', met: c.coldStartMs.p50 < 10 },
        { name: 'warm p50 added by the pool (C)', measured: `${fmt(addedByPool, 3)} ms`, goal: '< 1 ms', met: addedByPool < 1 },
      ],
    };
  } finally {
    await kernel.close();
    removeTempDir(dir);
  }
}

export function formatWasm(result: WasmBenchResult): string {
  const c = result.c;
  const lines = [
    `== wasm: examples/wasm-c (${fmtInt(c.moduleBytes)} bytes, compiled once in ${fmt(c.compileMs, 2)} ms) ==`,
    table(
      ['figure', 'p50', 'p99'],
      [
        spreadRow('instantiate (new WASI + link + new Instance)', c.instantiateUs, 1, 'µs'),
        spreadRow('run in-thread (instantiate + _start + CGI output)', c.inThreadRunMs),
        spreadRow('run through the pool (one at a time)', c.poolRunMs),
        spreadRow(`cold start: hibernated -> 200 via proxy (${c.coldStartMs.cycles} cycles)`, c.coldStartMs),
        spreadRow('warm GET via proxy (new connection each)', c.warmProxyMs),
        spreadRow("warm GET to the function's own server", c.warmDirectMs),
      ],
    ),
    table(
      ['throughput (16 in flight, median of 3)', 'per second', 'CPU µs per call'],
      [
        ['pool alone (runWasi, no HTTP)', fmtInt(c.poolOpsPerSec), fmt(c.cpuUsPerCall.pool, 0)],
        ["HTTP to the function's server (wrk -c16)", c.directRps === null ? 'n/a' : fmtInt(c.directRps), fmt(c.cpuUsPerCall.direct ?? NaN, 0)],
        ['HTTP through the proxy (wrk -c16)', c.proxyRps === null ? 'n/a' : fmtInt(c.proxyRps), fmt(c.cpuUsPerCall.proxy ?? NaN, 0)],
      ],
    ),
  ];
  if (result.engines) lines.push(formatEngines(result.engines));
  if (result.ts) lines.push(table(['TypeScript component figure', 'value'], Object.entries(result.ts).map(([name, value]) => [name, fmt(value, 3)])));
  return lines.join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runWasmBench();
  process.stdout.write(`\n${formatWasm(result)}\n\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'}  ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
