/**
 * The thread hop a wasm request pays, without a guest: one round trip main thread -> worker -> main thread, three
 * ways, in interleaved rounds of one run. What the pool does today (piscina.run of a task shaped like a WASI call,
 * answered at once by a worker), a bare Worker's postMessage (MessagePort, structured clone), and a
 * SharedArrayBuffer cell with Atomics.notify and Atomics.waitAsync on both sides (no message object at all: the
 * design a leaner hop would use). Figures per round trip: main-thread CPU (its schedstat, ns) and wall time, and
 * each as a ratio to piscina's in the same round. Also how long a call waits after the worker slept 100 ms.
 *
 *   node --import tsx bench/wasm-hop.ts          (BENCH_HOP_TRIPS, default 5000 per round; 5 rounds)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { fmt, isMain, makeTempDir, median, removeTempDir, sleep, table } from './lib.ts';

/** Atomics.waitAsync (ES2024; in Node 20's V8, not in this project's TypeScript lib). */
const waitAsync = (Atomics as unknown as { waitAsync(cells: Int32Array, index: number, value: number): { async: boolean; value: Promise<unknown> | string } }).waitAsync;

/** On-CPU time of the calling thread, ns (schedstat: exact, not in 10 ms ticks). */
const threadCpuNs = (): number => Number(readFileSync('/proc/thread-self/schedstat', 'latin1').split(' ', 1)[0]);

/** A task the size and shape of a WASI call's: 20 environment variables, argv, an empty body, the ticker's buffer. */
function wasiLikeTask(ticker: SharedArrayBuffer): Record<string, unknown> {
  const env: Record<string, string> = {};
  for (let i = 0; i < 20; i++) env[`VARIABLE_${i}`] = `value of variable ${i}`;
  return {
    op: 'wasi', hash: 'f'.repeat(64), instanceKey: 'fn/c:bench', generation: 0, submittedAt: performance.now(), capPages: 512,
    args: ['c'], env, stdin: new Uint8Array(0), dataDir: '/tmp/data', preopenAs: '/data',
    wasmtime: { shared: { library: '/lib/libwasmtime.so', engine: '1', componentEngine: '3', fuelEngine: '2', ticker }, artifact: '/a.cwasm', adapter: null, deadlineAt: 0, deadlineMs: 30_000, slot: 1, fuel: null },
  };
}

interface Way {
  name: string;
  trip: () => Promise<unknown>;
  close: () => Promise<unknown>;
}

async function ways(dir: string): Promise<Way[]> {
  const ticker = new SharedArrayBuffer(4 * 65_538);
  // piscina as the pool runs it: one thread, atomics disabled, answered with a result shaped like a WASI one.
  const file = path.join(dir, 'echo-worker.mjs');
  writeFileSync(file, `export default function run(task) { return { threadId: 1, queueMs: 0, runMs: 0, instantiated: true, live: 0, evicted: [], ok: true, value: { exitCode: 0, stdout: new Uint8Array(64) }, logs: [] }; }\n`);
  const piscina = new Piscina({ filename: file, minThreads: 1, maxThreads: 1, idleTimeout: Infinity, atomics: 'disabled', concurrentTasksPerWorker: 1 });
  const bare = new Worker(`const { parentPort } = require('node:worker_threads'); parentPort.on('message', () => parentPort.postMessage({ ok: true, value: { exitCode: 0, stdout: new Uint8Array(64) }, logs: [] }));`, { eval: true });
  const cells = new Int32Array(new SharedArrayBuffer(8));
  const atomics = new Worker(
    `const { workerData } = require('node:worker_threads');
     const cells = new Int32Array(workerData);
     const serve = () => { const r = Atomics.waitAsync(cells, 0, 0); (r.async ? r.value : Promise.resolve()).then(() => {
       if (Atomics.load(cells, 0) === 2) return clearInterval(alive); Atomics.store(cells, 0, 0); Atomics.store(cells, 1, 1); Atomics.notify(cells, 1); serve(); }); };
     // A pending waitAsync does not keep a thread's event loop alive (a pool worker has its port for that).
     const alive = setInterval(() => undefined, 1 << 30);
     serve();`,
    { eval: true, workerData: cells.buffer },
  );
  return [
    { name: 'piscina.run (the pool today)', trip: () => piscina.run(wasiLikeTask(ticker)), close: () => piscina.destroy() },
    {
      name: 'Worker postMessage round trip',
      trip: () => new Promise((resolve) => { bare.once('message', resolve); bare.postMessage(wasiLikeTask(ticker)); }),
      close: () => bare.terminate(),
    },
    {
      name: 'SharedArrayBuffer + Atomics.notify / waitAsync',
      trip: async () => {
        Atomics.store(cells, 1, 0);
        Atomics.store(cells, 0, 1);
        Atomics.notify(cells, 0);
        const wait = waitAsync(cells, 1, 0);
        if (wait.async) await wait.value;
      },
      close: async () => { Atomics.store(cells, 0, 2); Atomics.notify(cells, 0); await atomics.terminate(); },
    },
  ];
}

export interface HopFigures {
  name: string;
  cpuUs: number;
  wallUs: number;
  /** Wall time of one round trip after the worker slept 100 ms, µs (median of the rounds' samples). */
  afterIdleUs: number;
}

export async function runHop(options: { trips?: number; rounds?: number } = {}): Promise<HopFigures[]> {
  const trips = options.trips ?? Number(process.env.BENCH_HOP_TRIPS ?? 5000);
  const rounds = options.rounds ?? 5;
  const dir = makeTempDir('wasm-hop');
  const all = await ways(dir);
  const cpu = all.map(() => [] as number[]);
  const wall = all.map(() => [] as number[]);
  const idle = all.map(() => [] as number[]);
  try {
    for (const way of all) for (let i = 0; i < 1000; i++) await way.trip();
    for (let round = 0; round < rounds; round++) {
      for (const [i, way] of all.entries()) {
        const cpuAt = threadCpuNs();
        const at = performance.now();
        for (let n = 0; n < trips; n++) await way.trip();
        wall[i]!.push(((performance.now() - at) * 1000) / trips);
        cpu[i]!.push((threadCpuNs() - cpuAt) / 1000 / trips);
        for (let n = 0; n < 4; n++) {
          await sleep(100);
          const started = performance.now();
          await way.trip();
          idle[i]!.push((performance.now() - started) * 1000);
        }
      }
    }
  } finally {
    for (const way of all) await way.close();
    removeTempDir(dir);
  }
  return all.map((way, i) => ({ name: way.name, cpuUs: median(cpu[i]!), wallUs: median(wall[i]!), afterIdleUs: median(idle[i]!) }));
}

export function formatHop(figures: HopFigures[]): string {
  const base = figures[0]!;
  return [
    '== wasm pool hop: one round trip main -> worker -> main, no guest (medians of interleaved rounds) ==',
    table(
      ['way', 'main CPU µs', 'x piscina', 'wall µs', 'x piscina', 'after 100 ms idle µs'],
      figures.map((f) => [f.name, fmt(f.cpuUs, 1), `${fmt(f.cpuUs / base.cpuUs, 2)}x`, fmt(f.wallUs, 1), `${fmt(f.wallUs / base.wallUs, 2)}x`, fmt(f.afterIdleUs, 0)]),
    ),
  ].join('\n');
}

if (isMain(import.meta.url)) {
  process.stdout.write(`\n${formatHop(await runHop())}\n\n`);
}
