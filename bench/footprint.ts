/**
 * Footprint: resident memory of a `ten serve` process with 10,000 hibernated instances registered, against the
 * same server with none, and against a bare `node` process that only waits (what Node itself costs). The compiled
 * package (dist/) is measured when it is built, else the sources through tsx (the report says which). The
 * instances are written to the state database (core/store.ts) as desired 'hibernated' before `ten serve` starts,
 * so the kernel restores them without starting a process. Servers with 0 and 10,000 instances alternate,
 * BENCH_FOOTPRINT_ROUNDS (2) times each; RSS is the median of samples taken after the server settles.
 *
 * A second figure, the JavaScript heap per instance, comes from kernels built in this process with 0 and 10,000
 * hibernated instances and a forced GC before each reading (the RSS difference of two processes is too coarse
 * to be read per instance: a few hundred KB against a couple of MB of noise).
 *
 *   node --import tsx bench/footprint.ts
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { defaultPlugins } from '../cli/default-plugins.ts';
import { Store } from '../core/store.ts';
import { createTestKernel } from '../core/test-kernel.ts';
import {
  type Goal,
  MB,
  ROOT,
  fmt,
  httpGet,
  isMain,
  makeTempDir,
  median,
  removeTempDir,
  rssBytes,
  sleep,
  startTenServe,
  table,
  tenEntry,
  startChild,
} from './lib.ts';

const NOTES_DIR = path.join(ROOT, 'examples', 'notes');
const SETTLE_MS = 3_000;
const SAMPLES = 8;
const SAMPLE_EVERY_MS = 250;
/** The goals (issue 17): idle, and with 10,000 hibernated instances. */
const IDLE_GOAL_MB = 60;
const FULL_GOAL_MB = 100;

export interface FootprintResult {
  instances: number;
  rounds: number;
  /** What ran: the compiled package or the sources. */
  measured: string;
  /** A bare `node` process that only waits, same run. */
  nodeMb: number;
  rssEmptyMb: number[];
  rssFullMb: number[];
  /** Idle as started (no request yet): the goals' figures. */
  emptyMb: number;
  fullMb: number;
  /** The same servers after two management requests (the management app made: core/management-loader.ts). */
  emptyManagedMb: number;
  fullManagedMb: number;
  /** The first management request (it waits for the management app) and the next, ms: medians over the servers. */
  firstRequestMs: number;
  nextRequestMs: number;
  /** (full - empty) / instances, KB. */
  perInstanceKb: number;
  /** The same, bytes. */
  perInstanceBytes: number;
  /** JS heap per registered hibernated instance, measured in-process after GC (10x instances), KB. */
  heapPerInstanceKb: number;
  goals: Goal[];
}

const notesService = {
  command: 'node app.mjs',
  cwd: NOTES_DIR,
  health: '/health',
  idleTimeout: '5m',
};

function seedStore(dataDir: string, count: number): void {
  const store = new Store(path.join(dataDir, 'tenement.db'));
  try {
    store.batch(() => {
      for (let i = 0; i < count; i++) store.saveInstance('notes', `tenant-${String(i).padStart(4, '0')}`, 'hibernated', 100);
    });
  } finally {
    store.close();
  }
}

interface ServeFootprint {
  /** Idle, as started: no request yet. Bytes. */
  rss: number;
  /** After management requests (the management app is made on the first one: core/management-loader.ts). Bytes. */
  rssManaged: number;
  /** The first management request (GET /health), which waits for the management app; then the next one. ms. */
  firstMs: number;
  nextMs: number;
}

async function rssSamples(pid: number): Promise<number> {
  await sleep(SETTLE_MS);
  const samples: number[] = [];
  for (let i = 0; i < SAMPLES; i++) {
    samples.push(rssBytes(pid));
    await sleep(SAMPLE_EVERY_MS);
  }
  return median(samples);
}

/** RSS of a `ten serve` with `count` hibernated instances (median of samples after it settles), idle and once managed. */
async function serveRss(count: number, script: string): Promise<ServeFootprint> {
  const dir = makeTempDir(`footprint-${count}`);
  const dataDir = path.join(dir, 'data');
  const config = path.join(dir, 'tenement.config.json');
  writeFileSync(config, JSON.stringify({ settings: { domain: 'localhost', port: 0, dataDir }, services: { notes: notesService } }));
  seedStore(dataDir, count);
  const serve = await startTenServe({ config, dataDir, script, timeoutMs: 60_000 });
  try {
    // Idle first: any management request (even /health) makes the management app.
    const rss = await rssSamples(serve.child.pid);
    let started = performance.now();
    const health = await httpGet(serve.port, 'localhost', '/health');
    const firstMs = performance.now() - started;
    const reported = (JSON.parse(health.body) as { instances?: number }).instances;
    if (health.status !== 200 || reported !== count) {
      throw new Error(`ten serve reports ${reported} instances (HTTP ${health.status}), expected ${count}:\n${serve.child.output()}`);
    }
    started = performance.now();
    await httpGet(serve.port, 'localhost', '/health');
    const nextMs = performance.now() - started;
    return { rss, rssManaged: await rssSamples(serve.child.pid), firstMs, nextMs };
  } finally {
    await serve.stop();
    removeTempDir(dir);
  }
}

/** RSS of a bare `node` that only waits: Node's own share of every figure above. */
async function nodeRss(): Promise<number> {
  const child = startChild(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
  try {
    await sleep(SETTLE_MS);
    const samples: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      samples.push(rssBytes(child.pid));
      await sleep(SAMPLE_EVERY_MS);
    }
    return median(samples);
  } finally {
    await child.stop('SIGKILL');
  }
}

function forcedGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

/** Heap growth per instance of a kernel in this process that restores `count` hibernated instances. */
async function heapPerInstance(count: number): Promise<number> {
  const gc = forcedGc();
  // Closed kernels let go of their objects only after their close callbacks ran: collect over a few turns.
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) {
      gc();
      await sleep(20);
    }
  };
  const measure = async (n: number): Promise<number> => {
    const dir = makeTempDir(`heap-${n}`);
    const dataDir = path.join(dir, 'data');
    seedStore(dataDir, n);
    await settle();
    const before = process.memoryUsage().heapUsed;
    const kernel = await createTestKernel({
      plugins: defaultPlugins,
      config: { settings: { dataDir, listen: '127.0.0.1' }, services: { notes: notesService } },
      dir: NOTES_DIR,
    });
    try {
      if (kernel.instances.size !== n) throw new Error(`kernel restored ${kernel.instances.size} instances, expected ${n}`);
      await settle();
      return process.memoryUsage().heapUsed - before;
    } finally {
      await kernel.close();
      removeTempDir(dir);
    }
  };
  await measure(0); // warm-up: module-level caches, compiled code
  const empty: number[] = [];
  const full: number[] = [];
  for (let i = 0; i < 3; i++) {
    empty.push(await measure(0));
    full.push(await measure(count));
  }
  return (median(full) - median(empty)) / count;
}

export async function runFootprintBench(options: { instances?: number; rounds?: number; log?: (line: string) => void } = {}): Promise<FootprintResult> {
  const log = options.log ?? ((line: string) => process.stdout.write(`${line}\n`));
  const instances = options.instances ?? Number(process.env.BENCH_FOOTPRINT_INSTANCES ?? 10_000);
  const rounds = options.rounds ?? Number(process.env.BENCH_FOOTPRINT_ROUNDS ?? 2);
  const entry = tenEntry();
  log(`footprint: ten serve RSS with 0 and ${instances} hibernated instances, ${rounds} rounds; ${entry.label}`);
  const empty: ServeFootprint[] = [];
  const full: ServeFootprint[] = [];
  const rssNode: number[] = [];
  for (let r = 0; r < rounds; r++) {
    rssNode.push(await nodeRss());
    empty.push(await serveRss(0, entry.script));
    full.push(await serveRss(instances, entry.script));
    log(
      `  round ${r + 1}: node ${fmt(rssNode[r]! / MB, 1)} MB, 0 -> ${fmt(empty[r]!.rss / MB, 1)} MB (${fmt(empty[r]!.rssManaged / MB, 1)} managed), ` +
        `${instances} -> ${fmt(full[r]!.rss / MB, 1)} MB (${fmt(full[r]!.rssManaged / MB, 1)} managed); first management request ${fmt(empty[r]!.firstMs, 0)} / ${fmt(full[r]!.firstMs, 0)} ms`,
    );
  }
  const rssEmpty = empty.map((one) => one.rss);
  const rssFull = full.map((one) => one.rss);
  const servers = [...empty, ...full];
  const heapPerInstanceBytes = await heapPerInstance(instances);
  const emptyMb = median(rssEmpty) / MB;
  const fullMb = median(rssFull) / MB;
  const perInstanceBytes = ((fullMb - emptyMb) * MB) / instances;
  return {
    instances,
    rounds,
    measured: entry.label,
    nodeMb: median(rssNode) / MB,
    rssEmptyMb: rssEmpty.map((b) => b / MB),
    rssFullMb: rssFull.map((b) => b / MB),
    emptyMb,
    fullMb,
    emptyManagedMb: median(empty.map((one) => one.rssManaged)) / MB,
    fullManagedMb: median(full.map((one) => one.rssManaged)) / MB,
    firstRequestMs: median(servers.map((one) => one.firstMs)),
    nextRequestMs: median(servers.map((one) => one.nextMs)),
    perInstanceKb: perInstanceBytes / 1024,
    perInstanceBytes,
    heapPerInstanceKb: heapPerInstanceBytes / 1024,
    goals: [
      { name: 'idle RSS (no instance)', measured: `${fmt(emptyMb, 1)} MB`, goal: `<= ${IDLE_GOAL_MB} MB`, met: emptyMb <= IDLE_GOAL_MB },
      { name: `RSS with ${instances} hibernated`, measured: `${fmt(fullMb, 1)} MB`, goal: `<= ${FULL_GOAL_MB} MB`, met: fullMb <= FULL_GOAL_MB },
    ],
  };
}

export function formatFootprint(result: FootprintResult): string {
  return [
    `== footprint: ten serve RSS, ${result.rounds} rounds (median); ${result.measured} ==`,
    table(
      ['process', 'RSS MB', 'vs node', 'rounds MB', 'managed MB'],
      [
        ["node -e 'setInterval(...)'", fmt(result.nodeMb, 1), '1.00x', '', ''],
        ['ten serve, 0 instances', fmt(result.emptyMb, 1), `${fmt(result.emptyMb / result.nodeMb)}x`, result.rssEmptyMb.map((v) => fmt(v, 1)).join(' / '), fmt(result.emptyManagedMb, 1)],
        [`ten serve, ${result.instances} hibernated`, fmt(result.fullMb, 1), `${fmt(result.fullMb / result.nodeMb)}x`, result.rssFullMb.map((v) => fmt(v, 1)).join(' / '), fmt(result.fullManagedMb, 1)],
      ],
    ),
    `managed: after the first management requests, which make the management app (Fastify); the first waits for it: ${fmt(result.firstRequestMs, 0)} ms, the next ${fmt(result.nextRequestMs, 1)} ms`,
    `ratio ${result.instances}/0: ${fmt(result.fullMb / result.emptyMb)}x; per hibernated instance: ${fmt(result.perInstanceBytes, 0)} bytes RSS, ${fmt(result.heapPerInstanceKb * 1024, 0)} bytes JS heap (in-process kernel from the sources, after GC)`,
    `goals (issue 17): idle <= ${IDLE_GOAL_MB} MB, <= ${FULL_GOAL_MB} MB with ${result.instances} hibernated`,
  ].join('\n');
}

if (isMain(import.meta.url)) {
  const result = await runFootprintBench();
  process.stdout.write(`\n${formatFootprint(result)}\n`);
  for (const goal of result.goals) process.stdout.write(`${goal.met ? 'MET ' : 'MISS'} ${goal.name}: ${goal.measured} (goal ${goal.goal})\n`);
}
