// A Prometheus text exposition in tests: parsed into samples, one sample's value looked up, and promtool's check
// of it (skipped, with the reason, where promtool is not installed).
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';

const promtoolMissing = spawnSync('promtool', ['--version']).error !== undefined;
/** Why the promtool checks skip (it is not installed), or false. */
export const NEEDS_PROMTOOL = promtoolMissing ? 'needs promtool (apt-get install prometheus)' : false;

/** `promtool check metrics` on an exposition: its exit code and what it said. */
export function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (comments skipped); label values unescaped. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `unparseable sample line: ${line}`);
    const labels: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [, name, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[name!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3] === 'Nan' ? 'NaN' : match[3]) });
  }
  return samples;
}

/** The value of the one sample `name` with exactly these labels (asserted to be at most one), if any. */
export function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels);
  const found = samples.filter((s) => s.name === name && Object.keys(s.labels).length === wanted.length && wanted.every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} appears ${found.length} times`);
  return found[0]?.value;
}
