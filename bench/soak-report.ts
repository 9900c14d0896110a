/** What the churn soak (bench/soak.ts) hands back: its samples and totals, and the summary printed at the end. */
import { fmt, fmtInt, type Goal } from './lib.ts';
import { SLOW_MS, type SoakOptions } from './soak-options.ts';

export interface SoakSample {
  /** Seconds since the load started. */
  at: number;
  rssMb: number;
  fds: number;
  listenSockets: number;
  threads: number;
  /** In this interval. */
  requests: number;
  errors: number;
  raced: number;
  actions: number;
  running: number;
  hibernated: number;
  /** MaxListenersExceededWarning lines the server printed so far (an event listener leak shows here). */
  listenerWarnings: number;
}

export interface SoakResult {
  options: Omit<SoakOptions, 'print'>;
  samples: SoakSample[];
  requests: number;
  served: number;
  raced: number;
  errors: number;
  errorKinds: Record<string, number>;
  /** The first errors whole (the answer's message, the API action on that tenant around it): what a fix needs. */
  errorSamples: string[];
  /** The answers of raced requests, by status and code. */
  raceKinds: Record<string, number>;
  /** API actions by kind and outcome (`restart 200`, `hibernate 409`...). */
  actions: Record<string, number>;
  /** Slowest request (ms) and how many took over SOAK_SLOW_MS (2.5 s). */
  maxLatencyMs: number;
  slowOver2500ms: number;
  /** Slow requests by the API action on their tenant that overlapped them. */
  slowCauses: Record<string, number>;
  /** Descriptors with every tenant hibernated and no client connected: after warm-up, and at the end. */
  quietFds: { afterWarmup: number; end: number };
  /** RSS of each sample from minute 5 on, against the minute-5 sample (null before minute 6). */
  rssFromMinute5: { min: number; max: number } | null;
  internalErrors: number;
  serverExited: boolean;
  goals: Goal[];
}

export function formatSoak(result: SoakResult): string {
  const lines = [
    `== churn soak (${result.options.minutes} min, ${result.options.tenants} tenants) ==`,
    `requests ${fmtInt(result.requests)}: served ${fmtInt(result.served)}, raced a deletion ${fmtInt(result.raced)}${result.raced > 0 ? ` (${Object.entries(result.raceKinds).map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}, errors ${fmtInt(result.errors)}`,
    `slowest ${fmt(result.maxLatencyMs, 0)} ms; over ${SLOW_MS} ms: ${result.slowOver2500ms}${result.slowOver2500ms > 0 ? ` (overlapping ${Object.entries(result.slowCauses).map(([k, v]) => `${k}: ${v}`).join(', ')})` : ''}`,
    `descriptors, quiet: ${result.quietFds.afterWarmup} after warm-up, ${result.quietFds.end} at the end`,
    `RSS from minute 5 on, against minute 5: ${result.rssFromMinute5 ? `${fmt(result.rssFromMinute5.min, 3)} to ${fmt(result.rssFromMinute5.max, 3)}` : 'n/a (shorter than 6 minutes)'}`,
    `tenement_internal_errors_total: ${result.internalErrors}${result.serverExited ? '; THE SERVER EXITED' : ''}`,
    `API actions: ${Object.entries(result.actions).sort().map(([k, v]) => `${k}: ${v}`).join(', ')}`,
  ];
  if (result.errors > 0) lines.push(`errors by kind: ${Object.entries(result.errorKinds).map(([k, v]) => `${k}: ${v}`).join('; ')}`);
  for (const sample of result.errorSamples) lines.push(`  error: ${sample}`);
  return lines.join('\n');
}
