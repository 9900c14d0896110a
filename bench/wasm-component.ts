/**
 * TypeScript functions as components (examples/wasm-hello): build, transpile, instantiate, warm call, RSS per
 * live instance (in this thread), then through the kernel: cold start (first request after hibernation,
 * artifacts on disk), warm latency via the proxy, and requests/s against the same handler written as a plain
 * Node HTTP server behind the kernel (process tier), printed as a ratio. The same component runs on both
 * engines in the same run (V8 through jco, and wasmtime when its library is there: `npm run fetch:wasmtime`),
 * with the ratios wasmtime / V8 printed.
 *
 *   node --import tsx bench/wasm-component.ts
 *
 * Env: BENCH_WASM_SAMPLES (300), BENCH_WASM_CYCLES (15), BENCH_WASM_INSTANCES (50), BENCH_WASM_SECONDS (3),
 * BENCH_WASM_THREADS (the kernel's pool threads; unset: the runtime's default).
 * Needs @bytecodealliance/jco (devDependency) and, for the throughput rows, wrk (apt-get install wrk).
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { defaultPlugins } from '../cli/default-plugins.ts';
import { createTestKernel } from '../core/test-kernel.ts';
import {
  buildComponent,
  handleHttp,
  instantiateComponent,
  prepareComponent,
  type ComponentInstance,
  type WasmHttpRequest,
} from '../core/wasm/component/index.ts';
import { forgetPreparedComponents } from '../core/wasm/component/prepare.ts';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { wasmtimeStatus } from '../core/wasm/wasmtime/library.ts';
import { prepareWasmtimeComponent } from '../core/wasm/wasmtime/component/compile.ts';
import { instantiateWasmtimeComponent } from '../core/wasm/wasmtime/component/run.ts';
import {
  ROOT,
  coldStarts,
  cpuMicrosOf,
  descendants,
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
  threadCpuMicros,
  timeEach,
  waitForOk,
} from './lib.ts';
import { formatComponentBench, goals, type ComponentBenchResult, type EngineFigures } from './wasm-component-report.ts';

export { formatComponentBench, type ComponentBenchResult, type EngineFigures } from './wasm-component-report.ts';

const MEMORY_PAGES = 1024;
const TS_HOST = 'bench.hello.localhost';
const WASMTIME_HOST = 'bench.hellowt.localhost';
const NATIVE_HOST = 'bench.native.localhost';

const NATIVE_APP = `// The same handler as examples/wasm-hello/hello.ts, as a plain Node HTTP server.
import http from 'node:http';
http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const url = new URL(req.url, 'http://x');
    const name = url.searchParams.get('name') ?? 'world';
    console.log(req.method + ' ' + url.pathname + ' for ' + name);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ hello: name, method: req.method, path: url.pathname, bytes: Buffer.concat(chunks).length,
      agent: req.headers['user-agent'] ?? null, at: new Date().toISOString() }));
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const request: WasmHttpRequest = {
  method: 'GET',
  path: '/bench',
  query: 'name=bench',
  headers: [['user-agent', 'bench']],
  body: new Uint8Array(0),
};

export async function runComponentBench(options: { log?: (line: string) => void } = {}): Promise<ComponentBenchResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const samples = Number(process.env.BENCH_WASM_SAMPLES ?? 300);
  const cycles = Number(process.env.BENCH_WASM_CYCLES ?? 15);
  const live = Number(process.env.BENCH_WASM_INSTANCES ?? 50);
  const seconds = Number(process.env.BENCH_WASM_SECONDS ?? 3);
  const dir = makeTempDir('wasm-component');
  try {
    log('wasm components: examples/wasm-hello (TypeScript, QuickJS)');
    const wasm = path.join(dir, 'hello.wasm');
    const built = await buildComponent({ source: path.join(ROOT, 'examples', 'wasm-hello', 'hello.ts'), out: wasm });
    log(`  build ${fmt(built.ms / 1000, 1)} s (cached by source hash after the first), ${fmtInt(built.bytes)} bytes`);

    const cacheDir = path.join(dir, 'artifacts');
    let started = performance.now();
    await prepareComponent(wasm, { cacheDir, memoryPages: MEMORY_PAGES });
    const transpileMs = performance.now() - started;
    forgetPreparedComponents();
    started = performance.now();
    const artifact = await prepareComponent(wasm, { cacheDir, memoryPages: MEMORY_PAGES });
    const prepareFromDiskMs = performance.now() - started;
    log(`  prepare: transpile ${fmt(transpileMs, 0)} ms the first time, ${fmt(prepareFromDiskMs, 1)} ms from disk`);

    const host = { dataDir: null, log: () => undefined };
    await instantiateComponent(artifact, host); // glue import, lazy compilation warm-up
    const instantiate = await timeEach(Math.min(samples, 100), () => instantiateComponent(artifact, host));
    const instance = await instantiateComponent(artifact, host);
    for (let i = 0; i < 200; i++) handleHttp(instance, request);
    const warmCall = (await timeEach(samples * 10, () => handleHttp(instance, request))).map((ms) => ms * 1000);

    (globalThis as { gc?: () => void }).gc?.();
    const before = process.memoryUsage().rss;
    const kept: ComponentInstance[] = [];
    for (let i = 0; i < live; i++) {
      const one = await instantiateComponent(artifact, host);
      handleHttp(one, request); // touch the pages a request uses
      kept.push(one);
    }
    (globalThis as { gc?: () => void }).gc?.();
    const rssPerInstanceMb = (process.memoryUsage().rss - before) / live / 1_048_576;
    log(`  instantiate p50 ${fmt(median(instantiate), 2)} ms, warm call p50 ${fmt(median(warmCall), 1)} µs, ${fmt(rssPerInstanceMb, 2)} MB RSS per live instance (${kept.length})`);

    const engine = wasmtimeStatus();
    let wasmtime: EngineFigures | null = null;
    if (engine.usable) wasmtime = await wasmtimeInThread(wasm, cacheDir, samples, live, log);
    else log(`  wasmtime: skipped (${engine.reason}; npm run fetch:wasmtime)`);

    const result: ComponentBenchResult = {
      componentBytes: built.bytes,
      buildMs: built.ms,
      transpileMs,
      prepareFromDiskMs,
      instantiateMs: spread(instantiate),
      warmCallUs: spread(warmCall),
      rssPerInstanceMb,
      coldStartMs: null,
      warmProxyMs: null,
      tsRps: null,
      nativeRps: null,
      cpuPerRequest: null,
      tierError: null,
      wasmtime,
      wasmtimeSkipped: engine.usable ? null : engine.reason,
      goals: [],
    };
    kept.length = 0;
    try {
      await tierFigures(dir, wasm, result, { samples, cycles, seconds, log });
    } catch (error) {
      result.tierError = (error as Error).message.split('\n')[0] ?? String(error);
      log(`  through the kernel: failed: ${result.tierError}`);
    }
    result.goals = goals(result);
    return result;
  } finally {
    removeTempDir(dir);
  }
}

/** In-thread figures of the same component on wasmtime. */
async function wasmtimeInThread(wasm: string, cacheDir: string, samples: number, live: number, log: (line: string) => void): Promise<EngineFigures> {
  const bytes = readFileSync(wasm);
  const sha = createHash('sha256').update(bytes).digest('hex');
  let started = performance.now();
  await prepareWasmtimeComponent(bytes, sha, cacheDir, MEMORY_PAGES);
  const compileMs = performance.now() - started;
  started = performance.now();
  const artifact = await prepareWasmtimeComponent(bytes, sha, cacheDir, MEMORY_PAGES);
  const prepareFromDiskMs = performance.now() - started;
  const host = { dataDir: null, log: () => undefined };
  instantiateWasmtimeComponent(artifact, host).close();
  const instantiate = await timeEach(Math.min(samples, 100), () => instantiateWasmtimeComponent(artifact, host).close());
  const instance = instantiateWasmtimeComponent(artifact, host);
  for (let i = 0; i < 200; i++) handleHttp(instance, request);
  const warmCall = (await timeEach(samples * 10, () => handleHttp(instance, request))).map((ms) => ms * 1000);
  instance.close();
  (globalThis as { gc?: () => void }).gc?.();
  const before = process.memoryUsage().rss;
  const kept: { close(): void }[] = [];
  for (let i = 0; i < live; i++) {
    const one = instantiateWasmtimeComponent(artifact, host);
    handleHttp(one, request);
    kept.push(one);
  }
  const rssPerInstanceMb = (process.memoryUsage().rss - before) / live / 1_048_576;
  for (const one of kept) one.close();
  log(
    `  wasmtime: compile ${fmt(compileMs, 0)} ms the first time, ${fmt(prepareFromDiskMs, 1)} ms from disk; instantiate p50 ${fmt(median(instantiate), 2)} ms, ` +
      `warm call p50 ${fmt(median(warmCall), 1)} µs, ${fmt(rssPerInstanceMb, 2)} MB RSS per live instance (${live})`,
  );
  return {
    compileMs,
    prepareFromDiskMs,
    instantiateMs: spread(instantiate),
    warmCallUs: spread(warmCall),
    rssPerInstanceMb,
    coldStartMs: null,
    warmProxyMs: null,
    rps: null,
    cpuPerRequest: null,
  };
}

async function tierFigures(
  dir: string,
  wasm: string,
  result: ComponentBenchResult,
  o: { samples: number; cycles: number; seconds: number; log: (line: string) => void },
): Promise<void> {
  writeFileSync(path.join(dir, 'native.mjs'), NATIVE_APP);
  const kernel = await createTestKernel({
    plugins: defaultPlugins,
    config: {
      settings: { port: 0, listen: '127.0.0.1', dataDir: path.join(dir, 'data') },
      services: {
        hello: { isolation: 'wasm', module: wasm, limits: { memory: `${MEMORY_PAGES * 64}KiB` }, idleTimeout: false, startupTimeout: '60s' },
        // The same file on the other engine (only when its library is there).
        ...(result.wasmtime
          ? { hellowt: { isolation: 'wasm' as const, module: wasm, wasm: { engine: 'wasmtime' as const }, limits: { memory: `${MEMORY_PAGES * 64}KiB` }, idleTimeout: false, startupTimeout: '60s' } }
          : {}),
        native: { command: 'node native.mjs', cwd: dir, idleTimeout: false, startupTimeout: '30s' },
      },
      instances: { hello: ['bench'], native: ['bench'], ...(result.wasmtime ? { hellowt: ['bench'] } : {}) },
      pluginOptions: {
        metrics: { processMetrics: false },
        ...(process.env.BENCH_WASM_THREADS ? { 'runtime-wasm': { threads: Number(process.env.BENCH_WASM_THREADS) } } : {}),
      },
    },
  });
  try {
    const port = Number(new URL(kernel.url).port);
    await waitForOk(port, TS_HOST, 60_000, `${TS_HOST} through the kernel`);
    await waitForOk(port, NATIVE_HOST, 30_000, `${NATIVE_HOST} through the kernel`);
    const instance = kernel.instances.get('hello', 'bench')!;
    const cold = await coldStarts(kernel, instance, port, TS_HOST, '/?name=cold', o.cycles);
    result.coldStartMs = { ...spread(cold), cycles: o.cycles };
    result.warmProxyMs = spread(await timeEach(o.samples, () => httpGet(port, TS_HOST, '/?name=warm')));
    o.log(`  through the kernel: cold start p50 ${fmt(result.coldStartMs.p50, 2)} ms, warm GET p50 ${fmt(result.warmProxyMs.p50, 3)} ms`);
    const wt = result.wasmtime;
    if (wt) {
      await waitForOk(port, WASMTIME_HOST, 60_000, `${WASMTIME_HOST} through the kernel`);
      const onWasmtime = kernel.instances.get('hellowt', 'bench')!;
      if (onWasmtime.logs.query().some((entry) => entry.line.includes('running on V8'))) throw new Error('the wasmtime service fell back to V8');
      wt.coldStartMs = { ...spread(await coldStarts(kernel, onWasmtime, port, WASMTIME_HOST, '/?name=cold', o.cycles)), cycles: o.cycles };
      wt.warmProxyMs = spread(await timeEach(o.samples, () => httpGet(port, WASMTIME_HOST, '/?name=warm')));
      o.log(`  through the kernel on wasmtime: cold start p50 ${fmt(wt.coldStartMs.p50, 2)} ms, warm GET p50 ${fmt(wt.warmProxyMs.p50, 3)} ms`);
    }

    const wrk = findBinary('wrk');
    if (!wrk) {
      o.log('  wrk not found (apt-get install wrk): throughput rows skipped');
      return;
    }
    // Alternating rounds, best of each: the two share 2 cores with the load generator.
    const ts: number[] = [];
    const native: number[] = [];
    const app = kernel.instances.get('native', 'bench')!.handle!.pid!;
    // CPU per request of each side, from the threads' and the app's own counters: what the ratio is made of.
    // A warm-up round each, not counted: V8 tiers the guest's hot wasm functions up to optimized code in background
    // threads during the first seconds of load (up to half the CPU then), and the native app's JIT warms up too.
    await runWrk({ binary: wrk, port, host: TS_HOST, threads: 1, connections: 16, seconds: 2 });
    await runWrk({ binary: wrk, port, host: NATIVE_HOST, threads: 1, connections: 16, seconds: 2 });
    if (wt) await runWrk({ binary: wrk, port, host: WASMTIME_HOST, threads: 1, connections: 16, seconds: 2 });
    const cpu = { tsMain: 0, tsOther: 0, tsRequests: 0, nativeTenement: 0, nativeApp: 0, nativeRequests: 0 };
    const wtCpu = { main: 0, other: 0, requests: 0 };
    const wtRps: number[] = [];
    for (let round = 0; round < 2; round++) {
      if (wt) {
        const before = threadCpuMicros();
        const run = await runWrk({ binary: wrk, port, host: WASMTIME_HOST, threads: 1, connections: 16, seconds: o.seconds });
        const after = threadCpuMicros();
        wtRps.push(run.requestsPerSec);
        wtCpu.main += (after.get(process.pid) ?? 0) - (before.get(process.pid) ?? 0);
        for (const [tid, micros] of after) if (tid !== process.pid) wtCpu.other += micros - (before.get(tid) ?? 0);
        wtCpu.requests += run.requests;
      }
      let before = threadCpuMicros();
      const tsRun = await runWrk({ binary: wrk, port, host: TS_HOST, threads: 1, connections: 16, seconds: o.seconds });
      let after = threadCpuMicros();
      ts.push(tsRun.requestsPerSec);
      cpu.tsMain += (after.get(process.pid) ?? 0) - (before.get(process.pid) ?? 0);
      for (const [tid, micros] of after) if (tid !== process.pid) cpu.tsOther += micros - (before.get(tid) ?? 0);
      cpu.tsRequests += tsRun.requests;
      before = threadCpuMicros();
      const appBefore = cpuMicrosOf([app, ...descendants(app)]);
      const nativeRun = await runWrk({ binary: wrk, port, host: NATIVE_HOST, threads: 1, connections: 16, seconds: o.seconds });
      after = threadCpuMicros();
      native.push(nativeRun.requestsPerSec);
      for (const [tid, micros] of after) cpu.nativeTenement += micros - (before.get(tid) ?? 0);
      cpu.nativeApp += cpuMicrosOf([app, ...descendants(app)]) - appBefore;
      cpu.nativeRequests += nativeRun.requests;
    }
    result.tsRps = Math.max(...ts);
    result.nativeRps = Math.max(...native);
    if (wt) {
      wt.rps = Math.max(...wtRps);
      wt.cpuPerRequest = { main: wtCpu.main / wtCpu.requests, otherThreads: wtCpu.other / wtCpu.requests };
      o.log(
        `  req/s on wasmtime ${fmtInt(wt.rps)}: ${fmt(wt.rps / result.nativeRps)} of native, ${fmt(wt.rps / result.tsRps)} of V8; ` +
          `CPU per request ${fmtInt(wt.cpuPerRequest.main + wt.cpuPerRequest.otherThreads)} µs (main thread ${fmtInt(wt.cpuPerRequest.main)})`,
      );
    }
    result.cpuPerRequest = {
      tsMain: cpu.tsMain / cpu.tsRequests,
      tsOtherThreads: cpu.tsOther / cpu.tsRequests,
      nativeTenement: cpu.nativeTenement / cpu.nativeRequests,
      nativeApp: cpu.nativeApp / cpu.nativeRequests,
    };
    const c = result.cpuPerRequest;
    o.log(`  req/s through the proxy (wrk -c16): TS component ${fmtInt(result.tsRps)}, native Node ${fmtInt(result.nativeRps)}, ratio ${fmt(result.tsRps / result.nativeRps)}`);
    o.log(
      `  CPU per request: TS ${fmtInt(c.tsMain + c.tsOtherThreads)} µs (main thread ${fmtInt(c.tsMain)}, pool workers and V8 threads ${fmtInt(c.tsOtherThreads)}); ` +
        `native ${fmtInt(c.nativeTenement + c.nativeApp)} µs (Tenement ${fmtInt(c.nativeTenement)}, the app ${fmtInt(c.nativeApp)})`,
    );
  } finally {
    await kernel.close();
  }
}

if (isMain(import.meta.url)) {
  const result = await runComponentBench();
  process.stdout.write(`\n${formatComponentBench(result)}\n`);
}
