/** Statistics over samples (median, percentiles, spread), figures formatted for the reports, and plain text tables. */

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!;
}

export const mean = (values: readonly number[]): number => values.reduce((sum, v) => sum + v, 0) / values.length;

/** The median and 99th percentile of a set of samples. */
export interface Spread {
  p50: number;
  p99: number;
}

export const spread = (values: readonly number[]): Spread => ({ p50: median(values), p99: percentile(values, 99) });

/** Runs `run` `count` times, one after the other; the duration of each, in ms. */
export async function timeEach(count: number, run: () => unknown): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await run();
    samples.push(performance.now() - started);
  }
  return samples;
}

export const fmt = (n: number, digits = 2): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
export const fmtInt = (n: number): string => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
export const fmtPct = (ratio: number): string => (Number.isFinite(ratio) ? `${(ratio * 100).toFixed(0)}%` : 'n/a');

/** A table row: the figure's name, then its p50 and p99 with their unit ('n/a' for a figure not measured). */
export const spreadRow = (name: string, s: Spread | null, digits = 3, unit = 'ms'): string[] =>
  s ? [name, `${fmt(s.p50, digits)} ${unit}`, `${fmt(s.p99, digits)} ${unit}`] : [name, 'n/a', 'n/a'];

/** A plain text table, columns left-aligned except those whose cells all look numeric. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => /^[-+\d.,%x ]*(ms|MB|KB|B)?$/.test(r[i] ?? '')));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (numeric[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const MB = 1024 * 1024;
