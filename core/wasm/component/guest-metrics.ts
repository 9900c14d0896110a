/**
 * Host side of the `tenement:http/metrics` import, in the pool worker: each call is checked here (names,
 * labels, values, a bound per request) and recorded as an update the worker hands back with the call's result;
 * the runtime keeps the values (runtimes/wasm/guest-metrics.ts). A bad call returns an error the SDK throws,
 * never a trap. Runs synchronously: the guest's call is synchronous.
 */
import type { GuestMetricUpdate } from '../types.ts';
import type { WitResult } from './tenant-data.ts';

/** Updates one request may make; past it each call fails (a loop cannot fill the host's memory). */
export const MAX_UPDATES_PER_CALL = 10_000;
/** Characters of names and labels one request may send (with the count above: a bound in bytes too). */
export const MAX_TEXT_PER_CALL = 1024 * 1024;
const MAX_NAME = 200;
const MAX_LABELS = 30;
const MAX_LABEL_NAME = 100;
const MAX_LABEL_VALUE = 1024;
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

const ok: WitResult<undefined> = { tag: 'ok', val: undefined };
const err = (val: string): WitResult<undefined> => ({ tag: 'err', val });

function check(name: unknown, labels: unknown): string | [string, string][] {
  if (typeof name !== 'string' || name.length > MAX_NAME || !METRIC_NAME.test(name)) {
    return `invalid metric name ${JSON.stringify(String(name).slice(0, 80))}: expected [a-zA-Z_:][a-zA-Z0-9_:]*, up to ${MAX_NAME} characters`;
  }
  if (!Array.isArray(labels) || labels.length > MAX_LABELS) return `expected at most ${MAX_LABELS} labels`;
  const out: [string, string][] = [];
  for (const pair of labels as unknown[]) {
    const [label, value] = Array.isArray(pair) ? (pair as unknown[]) : [];
    if (typeof label !== 'string' || label.length > MAX_LABEL_NAME || !LABEL_NAME.test(label) || label.startsWith('__')) {
      return `invalid label name ${JSON.stringify(String(label).slice(0, 80))}: expected [a-zA-Z_][a-zA-Z0-9_]*, not starting with '__'`;
    }
    if (typeof value !== 'string' || value.length > MAX_LABEL_VALUE) return `label ${label}: expected a string of at most ${MAX_LABEL_VALUE} characters`;
    if (out.some(([l]) => l === label)) return `label ${label} given twice`;
    out.push([label, value]);
  }
  return out;
}

export interface GuestMetricsImports {
  set(name: string, labels: [string, string][], value: number): WitResult<undefined>;
  add(name: string, labels: [string, string][], delta: number): WitResult<undefined>;
}

/** The import's functions, recording into `sink` (the running call's updates). */
export function guestMetricsImports(sink: () => GuestMetricUpdate[]): GuestMetricsImports {
  let text = 0;
  let of: GuestMetricUpdate[] | null = null;
  const record = (kind: 'set' | 'add', name: string, labels: [string, string][], value: number): WitResult<undefined> => {
    const updates = sink();
    if (updates !== of) {
      // A new request: its own budget.
      of = updates;
      text = 0;
    }
    if (updates.length >= MAX_UPDATES_PER_CALL) return err(`more than ${MAX_UPDATES_PER_CALL} metric updates in one request`);
    const checked = check(name, labels);
    if (typeof checked === 'string') return err(checked);
    const size = checked.reduce((sum, [l, v]) => sum + l.length + v.length, name.length);
    if (text + size > MAX_TEXT_PER_CALL) return err(`more than ${MAX_TEXT_PER_CALL} characters of metric names and labels in one request`);
    text += size;
    if (typeof value !== 'number') return err('expected a number');
    if (kind === 'add' && !(Number.isFinite(value) && value >= 0)) return err(`a counter only goes up: expected a finite delta >= 0, got ${value}`);
    updates.push({ kind, name, labels: checked, value });
    return ok;
  };
  return {
    set: (name, labels, value) => record('set', name, labels, value),
    add: (name, labels, delta) => record('add', name, labels, delta),
  };
}
