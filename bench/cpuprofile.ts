/**
 * Reads a V8 `.cpuprofile` (written by `node --cpu-prof`) and summarises where time went: self time by function
 * and by file, and inclusive time of chosen functions, optionally only for samples inside a time window (so the
 * start-up and shutdown of the profiled process do not count).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ROOT, fmt, table } from './lib.ts';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileEntry {
  name: string;
  where: string;
  ms: number;
  share: number;
}

export interface ProfileSummary {
  file: string;
  windowMs: number;
  sampledMs: number;
  /** Share of the window the process was not idle (on CPU or in GC). */
  busyShare: number;
  topSelf: ProfileEntry[];
  byFile: ProfileEntry[];
  /** Top-down call tree, nodes with at least `treeMin` of busy time, in depth-first order. */
  tree: Array<ProfileEntry & { depth: number; selfShare: number }>;
}

const SPECIAL = new Set(['(root)', '(program)', '(idle)', '(garbage collector)']);

function shortUrl(url: string): string {
  if (url === '') return '(native)';
  if (url.startsWith('node:')) return url;
  const file = url.startsWith('file://') ? decodeURIComponent(new URL(url).pathname) : url;
  const nm = file.lastIndexOf('/node_modules/');
  if (nm !== -1) return file.slice(nm + '/node_modules/'.length);
  return path.relative(ROOT, file);
}

function frameName(frame: CallFrame): string {
  const name = frame.functionName || '(anonymous)';
  return name.length > 60 ? `${name.slice(0, 57)}...` : name;
}

function frameWhere(frame: CallFrame): string {
  if (SPECIAL.has(frame.functionName)) return '';
  const where = shortUrl(frame.url);
  return frame.url === '' ? where : `${where}:${frame.lineNumber + 1}`;
}

/**
 * `window` is [from, to] in microseconds of CLOCK_MONOTONIC (what `process.hrtime.bigint() / 1000n` gives in
 * any process on the same machine; V8 stamps profiles with the same clock on Linux).
 */
export function summarizeProfile(
  file: string,
  options: { window?: readonly [number, number]; top?: number; treeMin?: number } = {},
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const from = options.window?.[0] ?? -Infinity;
  const to = options.window?.[1] ?? Infinity;
  const selfUs = new Map<number, number>();
  let totalUs = 0;
  let idleUs = 0;
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (t < from || t > to) continue;
    // Each sample stands for the time until the next one.
    const weight = profile.timeDeltas[i + 1] ?? delta;
    const id = profile.samples[i]!;
    totalUs += weight;
    selfUs.set(id, (selfUs.get(id) ?? 0) + weight);
    const node = byId.get(id);
    if (node?.callFrame.functionName === '(idle)') idleUs += weight;
  }
  const busyUs = Math.max(1, totalUs - idleUs);
  const byFunction = new Map<string, { name: string; where: string; us: number }>();
  const byFile = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)') continue;
    const name = frameName(frame);
    const where = frameWhere(frame);
    const key = `${name}@${where}`;
    const entry = byFunction.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    byFunction.set(key, entry);
    const fileKey = SPECIAL.has(frame.functionName) ? frame.functionName : shortUrl(frame.url);
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + us);
  }
  const inclusiveUs = new Map<number, number>();
  const inclusive = (id: number): number => {
    const known = inclusiveUs.get(id);
    if (known !== undefined) return known;
    let us = selfUs.get(id) ?? 0;
    for (const child of byId.get(id)!.children ?? []) us += inclusive(child);
    inclusiveUs.set(id, us);
    return us;
  };
  const root = profile.nodes[0]!.id;
  // Iterative, so deep stacks cannot overflow ours; children first computed bottom-up.
  const order: number[] = [];
  for (const stack = [root]; stack.length > 0; ) {
    const id = stack.pop()!;
    order.push(id);
    stack.push(...(byId.get(id)!.children ?? []));
  }
  for (let i = order.length - 1; i >= 0; i--) inclusive(order[i]!);
  const treeMin = (options.treeMin ?? 0.015) * busyUs;
  const tree: ProfileSummary['tree'] = [];
  const walk = (id: number, depth: number): void => {
    const children = [...(byId.get(id)!.children ?? [])].sort((a, b) => inclusive(b) - inclusive(a));
    for (const child of children) {
      const us = inclusive(child);
      const frame = byId.get(child)!.callFrame;
      if (us < treeMin || frame.functionName === '(idle)') continue;
      tree.push({ depth, name: frameName(frame), where: frameWhere(frame), ms: us / 1000, share: us / busyUs, selfShare: (selfUs.get(child) ?? 0) / busyUs });
      walk(child, depth + 1);
    }
  };
  walk(root, 0);
  const top = options.top ?? 25;
  const entry = (name: string, where: string, us: number): ProfileEntry => ({ name, where, ms: us / 1000, share: us / busyUs });
  return {
    file,
    windowMs: Number.isFinite(from) && Number.isFinite(to) ? (to - from) / 1000 : (profile.endTime - profile.startTime) / 1000,
    sampledMs: totalUs / 1000,
    busyShare: totalUs > 0 ? (totalUs - idleUs) / totalUs : 0,
    topSelf: [...byFunction.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map((e) => entry(e.name, e.where, e.us)),
    byFile: [...byFile.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => entry(name, '', us)),
    tree,
  };
}

export function formatProfile(summary: ProfileSummary): string {
  const pct = (share: number): string => `${(share * 100).toFixed(1)}%`;
  return [
    `profile ${summary.file}`,
    `window ${fmt(summary.windowMs, 0)} ms, busy ${pct(summary.busyShare)} of it; shares below are of busy (non-idle) time`,
    '',
    'self time by function:',
    table(
      ['function', 'where', 'ms', 'share'],
      summary.topSelf.map((e) => [e.name, e.where, fmt(e.ms, 0), pct(e.share)]),
    ),
    '',
    'self time by file / module:',
    table(
      ['file', 'ms', 'share'],
      summary.byFile.map((e) => [e.name, fmt(e.ms, 0), pct(e.share)]),
    ),
    '',
    'top-down (total share, self share, function, where); tsx compiles each module onto one line, so',
    'Tenement frames show line 1 and closures show as (anonymous):',
    ...summary.tree.map((e) => `${'  '.repeat(e.depth)}${pct(e.share)} (self ${pct(e.selfShare)}) ${e.name} ${e.where}`),
  ].join('\n');
}
