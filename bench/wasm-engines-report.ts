/** What bench/wasm-engines.ts measures per engine, and its table and goals block (issue 12). */
import { fmt, table, type Spread } from './lib.ts';
import { IDLE_MS, coldClientInProcess, type ColdPairs } from './wasm-cold.ts';

export interface EngineFigures {
  compileMs: number;
  /** Loading compiled code a restarted server already has: V8 compiles again (Node cannot persist it); wasmtime deserializes its artifact. */
  reloadMs: number;
  instantiateUs: Spread;
  inThreadRunMs: Spread;
  /** The same request with its instance made before it (as a pool worker does after each answer). */
  inThreadAheadMs: Spread;
  /** Cold starts paired with the native server's GET after the same pause (wasm-cold.ts). */
  cold: ColdPairs;
  warmProxyMs: Spread;
  /** wrk -c1 (one request at a time on a kept-alive connection) p50 through the proxy, median of 5 rounds. */
  warmC1Ms: number;
  /** warmC1Ms minus a native Node server's through the same proxy, per interleaved round (median). */
  warmAddedMs: number;
  proxyRps: number | null;
  /** RSS per instance alive at once (1,000 instantiated, kept), KB; NaN without gc() (node --expose-gc). */
  rssPerInstanceKb: number;
  /** A runaway with a 200 ms deadline: answered this long after its deadline, ms (median of 5). */
  runawayOvershootMs: number;
  /** The next call on the pool right after (V8: its worker is being replaced), ms. */
  afterRunawayMs: number;
}

export type Engine = 'v8' | 'wasmtime';

export interface EngineComparison {
  figures: Record<Engine, EngineFigures>;
  /** The native Node server's wrk -c1 p50 through the same proxy (median of the rounds), ms. */
  nativeC1Ms: number | null;
  moduleBytes: number;
}

export function formatEngines(result: EngineComparison): string {
  const { v8, wasmtime } = result.figures;
  const row = (name: string, a: number | null, b: number | null, digits = 3): string[] => [
    name,
    a === null ? 'n/a' : fmt(a, digits),
    b === null ? 'n/a' : fmt(b, digits),
    a === null || b === null ? 'n/a' : `${fmt(b / a, 2)}x`,
  ];
  const pairs = wasmtime.cold.pairs;
  const both = (name: string, pick: (f: EngineFigures) => { p50: number; p90: number }): string[][] => [
    row(`${name} p50`, pick(v8).p50, pick(wasmtime).p50),
    row(`${name} p90`, pick(v8).p90, pick(wasmtime).p90),
  ];
  return [
    `== wasm engines: examples/wasm-c (${result.moduleBytes} bytes) on V8 and on wasmtime, same module ==`,
    table(
      ['figure', 'V8', 'wasmtime', 'wasmtime/V8'],
      [
        row('compile (ms)', v8.compileMs, wasmtime.compileMs, 1),
        row('code on restart: V8 compiles, wasmtime deserializes (ms)', v8.reloadMs, wasmtime.reloadMs, 3),
        row('instantiate p50 (µs)', v8.instantiateUs.p50, wasmtime.instantiateUs.p50, 1),
        row('run in-thread p50 (ms: instantiate + _start + CGI)', v8.inThreadRunMs.p50, wasmtime.inThreadRunMs.p50),
        row('run in-thread p99 (ms)', v8.inThreadRunMs.p99, wasmtime.inThreadRunMs.p99),
        row('run in-thread, instance made ahead p50 (ms: what a pool worker now pays per request)', v8.inThreadAheadMs.p50, wasmtime.inThreadAheadMs.p50),
        ...both(`cold start hibernated -> 200 after ${IDLE_MS} ms, new connection, client ${coldClientInProcess() ? 'in the server\'s process' : 'in its own process'} (ms, ${pairs} pairs)`, (f) => f.cold.cold),
        ...both(`the native server's GET after the same pause, same pairs (ms)`, (f) => f.cold.native),
        ...both('what hibernation adds: cold minus that native GET, per pair (ms)', (f) => f.cold.added),
        ...both('wake in the server (waking -> woken) (ms)', (f) => f.cold.wake),
        row(`the same wasm GET after the same pause, not hibernated p50 (ms)`, v8.cold.idleWarm.p50, wasmtime.cold.idleWarm.p50),
        row('cold minus that idle-warm GET, per cycle p50 (ms: the wake alone)', v8.cold.wakeAdded.p50, wasmtime.cold.wakeAdded.p50),
        row('idle-warm minus the native GET, per cycle p50 (ms: the wasm path after a pause)', v8.cold.idleOverNative.p50, wasmtime.cold.idleOverNative.p50),
        row('warm GET via proxy p50 (ms)', v8.warmProxyMs.p50, wasmtime.warmProxyMs.p50),
        row('warm GET via proxy p99 (ms)', v8.warmProxyMs.p99, wasmtime.warmProxyMs.p99),
        row(`warm via proxy, wrk -c1 p50 (ms; native Node server ${result.nativeC1Ms === null ? 'n/a' : fmt(result.nativeC1Ms, 3)})`, v8.warmC1Ms, wasmtime.warmC1Ms),
        row('warm added over the native server, c1 p50 (ms)', v8.warmAddedMs, wasmtime.warmAddedMs),
        row('req/s via proxy (wrk -c16, median of 3)', v8.proxyRps, wasmtime.proxyRps, 0),
        row('RSS per live instance (KB)', v8.rssPerInstanceKb, wasmtime.rssPerInstanceKb, 1),
        row('runaway (200 ms deadline) answered after deadline + (ms)', v8.runawayOvershootMs, wasmtime.runawayOvershootMs, 1),
        row('next 2 calls right after a runaway (ms)', v8.afterRunawayMs, wasmtime.afterRunawayMs, 1),
      ],
    ),
    '',
    goalLines(result).join('\n'),
  ].join('\n');
}

/** Issue 12's goals that this bench measures, each with the figure it names. */
function goalLines(result: EngineComparison): string[] {
  const { v8, wasmtime } = result.figures;
  const line = (name: string, measured: number, goal: string, met: boolean) => `  ${name}: ${fmt(measured, 3)} ms (goal ${goal}) ${met ? 'met' : 'NOT met'}`;
  const added = Math.min(v8.warmAddedMs, wasmtime.warmAddedMs);
  const cold = wasmtime.cold;
  return [
    'goals (issue 12):',
    line(`C cold start on wasmtime, what hibernation adds over a native server's GET after the same pause, p50 of ${cold.pairs} pairs`, cold.added.p50, '< 1 ms', cold.added.p50 < 1),
    line('  the same, p90', cold.added.p90, '< 1 ms', cold.added.p90 < 1),
    line('  the wake in the server (waking -> woken) p50', cold.wake.p50, '< 1 ms', cold.wake.p50 < 1),
    line('  end to end, hibernated -> 200 on a new connection p50 (includes the host\'s idle wake-up)', cold.cold.p50, '< 1 ms', cold.cold.p50 < 1),
    line('warm added p50 over a native server through the same proxy, c1, faster engine', added, '< 0.2 ms', added < 0.2),
    line('runaway stopped after its deadline on wasmtime, without replacing the worker', wasmtime.runawayOvershootMs, '<= 10 ms', wasmtime.runawayOvershootMs <= 10),
  ];
}
