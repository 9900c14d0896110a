/** What bench/wasm-component.ts measures on each engine, its goals, and the tables it prints. */
import { type Goal, type Spread, fmt, fmtInt, spreadRow, table } from './lib.ts';

export interface ComponentBenchResult {
  componentBytes: number;
  buildMs: number;
  /** First prepare: sha256 + transpile (jco-transpile) + compile. */
  transpileMs: number;
  /** Prepare again from the artifacts on disk (what a restarted server does): read + compile. */
  prepareFromDiskMs: number;
  instantiateMs: Spread;
  warmCallUs: Spread;
  rssPerInstanceMb: number;
  /** Through the kernel; null when the tier could not serve the function (error in `tierError`). */
  coldStartMs: (Spread & { cycles: number }) | null;
  warmProxyMs: Spread | null;
  tsRps: number | null;
  nativeRps: number | null;
  /** CPU per request over the throughput rounds, in µs: where each side's time goes. */
  cpuPerRequest: { tsMain: number; tsOtherThreads: number; nativeTenement: number; nativeApp: number } | null;
  tierError: string | null;
  /** The same component on the wasmtime engine; null with `wasmtimeSkipped` saying why. */
  wasmtime: EngineFigures | null;
  wasmtimeSkipped: string | null;
  goals: Goal[];
}

/** What the wasmtime engine measured, the same figures as V8's above. */
export interface EngineFigures {
  /** First prepare: compile (Cranelift) + serialize the artifact. */
  compileMs: number;
  /** Prepare again with the artifact on disk: deserialize. */
  prepareFromDiskMs: number;
  instantiateMs: Spread;
  warmCallUs: Spread;
  rssPerInstanceMb: number;
  coldStartMs: (Spread & { cycles: number }) | null;
  warmProxyMs: Spread | null;
  rps: number | null;
  cpuPerRequest: { main: number; otherThreads: number } | null;
}

export function goals(r: ComponentBenchResult): Goal[] {
  const out: Goal[] = [
    { name: 'TS memory per live instance', measured: `${fmt(r.rssPerInstanceMb, 2)} MB`, goal: '< 3 MB', met: r.rssPerInstanceMb < 3 },
  ];
  if (r.coldStartMs) {
    out.push({ name: 'TS cold start (hibernated -> 200)', measured: `${fmt(r.coldStartMs.p50, 2)} ms`, goal: '< 25 ms', met: r.coldStartMs.p50 < 25 });
  }
  if (r.tsRps !== null && r.nativeRps !== null) {
    const ratio = r.tsRps / r.nativeRps;
    out.push({ name: 'TS function req/s vs native Node handler', measured: fmt(ratio), goal: '>= 0.50', met: ratio >= 0.5 });
    const faster = Math.max(r.tsRps, r.wasmtime?.rps ?? 0) / r.nativeRps;
    out.push({ name: 'TS function req/s vs native, faster engine (issue 12)', measured: fmt(faster), goal: '>= 0.60', met: faster >= 0.6 });
  }
  return out;
}

export function formatComponentBench(r: ComponentBenchResult): string {
  const lines = [
    `== wasm components: examples/wasm-hello (TypeScript, ${fmtInt(r.componentBytes)} bytes; transpiled in ${fmt(r.transpileMs, 0)} ms, from disk in ${fmt(r.prepareFromDiskMs, 1)} ms) ==`,
    table(
      ['figure', 'p50', 'p99'],
      [
        spreadRow('instantiate (in-thread, modules compiled)', r.instantiateMs, 2),
        spreadRow('warm call handle() in-thread', r.warmCallUs, 1, 'µs'),
        spreadRow(`cold start: hibernated -> 200 via proxy (${r.coldStartMs?.cycles ?? 0} cycles)`, r.coldStartMs, 2),
        spreadRow('warm GET via proxy (new connection each)', r.warmProxyMs),
      ],
    ),
    table(
      ['figure', 'value'],
      [
        ['RSS per live instance', `${fmt(r.rssPerInstanceMb, 2)} MB`],
        ['req/s via proxy, TS component (wrk -c16)', r.tsRps === null ? 'n/a' : fmtInt(r.tsRps)],
        ['req/s via proxy, native Node server (wrk -c16)', r.nativeRps === null ? 'n/a' : fmtInt(r.nativeRps)],
        ['ratio TS / native', r.tsRps === null || r.nativeRps === null ? 'n/a' : fmt(r.tsRps / r.nativeRps)],
        ...(r.cpuPerRequest
          ? [
              ['CPU µs/request, TS: main thread', fmtInt(r.cpuPerRequest.tsMain)],
              ['CPU µs/request, TS: pool workers + V8 threads', fmtInt(r.cpuPerRequest.tsOtherThreads)],
              ['CPU µs/request, native: Tenement', fmtInt(r.cpuPerRequest.nativeTenement)],
              ['CPU µs/request, native: the app', fmtInt(r.cpuPerRequest.nativeApp)],
            ]
          : []),
      ],
    ),
  ];
  const w = r.wasmtime;
  if (w) {
    const ratio = (a: number | null | undefined, b: number | null | undefined) => (a == null || b == null || b === 0 ? 'n/a' : fmt(a / b));
    lines.push(
      `-- the same component on wasmtime (compiled in ${fmt(w.compileMs, 0)} ms, from disk in ${fmt(w.prepareFromDiskMs, 1)} ms) --`,
      table(
        ['figure', 'V8 p50', 'wasmtime p50', 'wasmtime / V8'],
        [
          ['instantiate (in-thread)', `${fmt(r.instantiateMs.p50, 2)} ms`, `${fmt(w.instantiateMs.p50, 2)} ms`, ratio(w.instantiateMs.p50, r.instantiateMs.p50)],
          ['warm call handle() in-thread', `${fmt(r.warmCallUs.p50, 1)} µs`, `${fmt(w.warmCallUs.p50, 1)} µs`, ratio(w.warmCallUs.p50, r.warmCallUs.p50)],
          ['RSS per live instance', `${fmt(r.rssPerInstanceMb, 2)} MB`, `${fmt(w.rssPerInstanceMb, 2)} MB`, ratio(w.rssPerInstanceMb, r.rssPerInstanceMb)],
          ['cold start via proxy', r.coldStartMs ? `${fmt(r.coldStartMs.p50, 2)} ms` : 'n/a', w.coldStartMs ? `${fmt(w.coldStartMs.p50, 2)} ms` : 'n/a', ratio(w.coldStartMs?.p50, r.coldStartMs?.p50)],
          ['warm GET via proxy', r.warmProxyMs ? `${fmt(r.warmProxyMs.p50, 3)} ms` : 'n/a', w.warmProxyMs ? `${fmt(w.warmProxyMs.p50, 3)} ms` : 'n/a', ratio(w.warmProxyMs?.p50, r.warmProxyMs?.p50)],
          ['req/s via proxy (wrk -c16)', r.tsRps === null ? 'n/a' : fmtInt(r.tsRps), w.rps === null ? 'n/a' : fmtInt(w.rps), ratio(w.rps, r.tsRps)],
          ['req/s / native Node server', ratio(r.tsRps, r.nativeRps), ratio(w.rps, r.nativeRps), ''],
        ],
      ),
    );
  } else if (r.wasmtimeSkipped) {
    lines.push(`wasmtime: skipped (${r.wasmtimeSkipped})`);
  }
  if (r.tierError) lines.push(`through the kernel: FAILED: ${r.tierError}`);
  for (const goal of r.goals) lines.push(`${goal.met ? 'MET ' : 'MISS'}  ${goal.name}: ${goal.measured} (goal ${goal.goal})`);
  return lines.join('\n');
}

