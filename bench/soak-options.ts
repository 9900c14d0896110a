/** The churn soak's knobs (bench/soak.ts): its options, read from the SOAK_* environment variables. */

/** A request slower than this is counted and attributed to the API action that overlapped it (SOAK_SLOW_MS). */
export const SLOW_MS = Number(process.env.SOAK_SLOW_MS ?? 2500);

export interface SoakOptions {
  minutes: number;
  tenants: number;
  concurrency: number;
  /** Requests per second, all workers together. */
  rps: number;
  /** One API action (hibernate, restart, or delete one tenant and create another) per interval. */
  churnEveryMs: number;
  sampleEveryMs: number;
  /** Load before the descriptor baseline is taken (pools, JIT and caches settle). */
  warmupMs: number;
  print?: (line: string) => void;
  /** What `ten serve` runs (default: the benches' choice, bench/lib.ts: the compiled package, built when stale). */
  script?: string;
}

export function soakOptionsFromEnv(defaults: Partial<SoakOptions> = {}): SoakOptions {
  const num = (name: string, fallback: number): number => {
    const value = Number(process.env[name]);
    return process.env[name] !== undefined && Number.isFinite(value) && value > 0 ? value : fallback;
  };
  return {
    minutes: num('SOAK_MINUTES', defaults.minutes ?? 30),
    tenants: Math.round(num('SOAK_TENANTS', defaults.tenants ?? 30)),
    concurrency: Math.round(num('SOAK_CONCURRENCY', defaults.concurrency ?? 8)),
    rps: num('SOAK_RPS', defaults.rps ?? 200),
    churnEveryMs: num('SOAK_CHURN_MS', defaults.churnEveryMs ?? 500),
    sampleEveryMs: num('SOAK_SAMPLE_SECONDS', (defaults.sampleEveryMs ?? 60_000) / 1000) * 1000,
    warmupMs: num('SOAK_WARMUP_SECONDS', (defaults.warmupMs ?? 30_000) / 1000) * 1000,
  };
}
