/**
 * cli/startup-tiering.ts holds V8 flags while `ten serve` starts and puts them back once it listens. What it holds
 * must not outlive the release: `--optimize-for-size` implies `--max-semi-space-size=1` on V8 11 (Node 20), which
 * every isolate made afterwards (wasm pool threads) would start with, and an isolate made while it is on keeps a
 * small young generation for good. Checked in fresh processes: a worker made after the release grows its young
 * generation past 1 MB semi-spaces, as one in a process that never held does.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const TIERING = pathToFileURL(path.join(ROOT, 'cli', 'startup-tiering.ts')).href;

/**
 * A worker that keeps some of what it allocates alive, so scavenges see survivors and the young generation grows.
 * An ES module: an eval'd worker inherits the parent's --input-type=module.
 */
const WORKER = `
import v8 from 'node:v8';
import { parentPort } from 'node:worker_threads';
let keep = [];
for (let i = 0; i < 3e6; i++) { keep.push({ i }); if (keep.length > 200000) keep = []; }
parentPort.postMessage(v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space').space_size);
`;

/** The young generation's size a worker reaches in a fresh node, made after these startup-tiering.ts calls. */
async function workerYoungGeneration(calls: readonly ('holdOptimizers' | 'releaseSizeHold' | 'releaseOptimizers' | 'compactHeap')[]): Promise<number> {
  const script = `
    import { Worker } from 'node:worker_threads';
    const tiering = await import(${JSON.stringify(TIERING)});
    for (const call of ${JSON.stringify(calls)}) tiering[call]();
    const worker = new Worker(${JSON.stringify(WORKER)}, { eval: true });
    worker.once('message', (size) => { process.stdout.write(String(size)); void worker.terminate(); });
    worker.once('error', (error) => { console.error(error); process.exit(1); });
  `;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, timeout: 120_000 });
  const size = Number(stdout.trim());
  assert.ok(size > 0, `no young generation size reported: ${stdout}`);
  return size;
}

/** Past a 1 MB semi-space's young generation (2 MB, rounded up to V8's pages): how far it grows beyond is V8's call. */
const SMALL = 4 * 2 ** 20;

const mb = (bytes: number): string => `${bytes / 2 ** 20} MB`;

test('a worker made after the start-up hold is released grows its young generation as without the hold', async () => {
  const [control, afterRelease] = await Promise.all([workerYoungGeneration([]), workerYoungGeneration(['holdOptimizers', 'releaseOptimizers'])]);
  assert.ok(control > SMALL, `the worker's young generation did not grow even without the hold (${mb(control)}): the check proves nothing`);
  assert.ok(afterRelease > SMALL, `young generation ${mb(afterRelease)} after hold and release, ${mb(control)} without`);
});

test('a worker made while the compilers are still held, but not the size (the kernel starting), grows its young generation', async () => {
  // What ten serve does between loading the config and listening: plugins' setup may make the wasm pool's threads.
  const size = await workerYoungGeneration(['holdOptimizers', 'releaseSizeHold']);
  assert.ok(size > SMALL, `young generation ${mb(size)} for a worker made after releaseSizeHold()`);
});

test('flags the user passed are left alone: nothing is held or released', async () => {
  const script = `
    const tiering = await import(${JSON.stringify(TIERING)});
    tiering.holdOptimizers();
    // Nothing was held, so the release sets nothing back: the user's flag stays, and so does its implication.
    tiering.releaseOptimizers();
    const { Worker } = await import('node:worker_threads');
    const worker = new Worker(${JSON.stringify(WORKER)}, { eval: true });
    worker.once('message', (size) => { process.stdout.write(String(size)); void worker.terminate(); });
  `;
  const { stdout } = await run(process.execPath, ['--max-semi-space-size=1', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, timeout: 120_000 });
  assert.ok(Number(stdout.trim()) <= SMALL, `the user's --max-semi-space-size=1 was overridden: ${stdout}`);
});

test('compactHeap frees the committed heap start-up left, without leaving gc to any code', async () => {
  // Start-up's garbage: module sources and parsed objects that died, held in pages of their own until compacted.
  const script = `
    import vm from 'node:vm';
    import { Worker } from 'node:worker_threads';
    const tiering = await import(${JSON.stringify(TIERING)});
    let keep = [];
    for (let i = 0; i < 400000; i++) { keep.push({ i, s: 'x'.repeat(i % 64) }); if (keep.length > 100000) keep = keep.slice(90000); }
    keep = null;
    const result = tiering.compactHeap();
    const worker = new Worker('import { parentPort } from "node:worker_threads"; parentPort.postMessage(typeof gc)', { eval: true });
    const inWorker = await new Promise((resolve) => worker.once('message', resolve));
    await worker.terminate();
    process.stdout.write(JSON.stringify({ result, here: typeof globalThis.gc, inContext: vm.runInNewContext('typeof gc'), inWorker }));
  `;
  const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, timeout: 120_000 });
  const seen = JSON.parse(stdout) as { result: { before: number; after: number } | null; here: string; inContext: string; inWorker: string };
  assert.ok(seen.result, 'compactHeap did nothing');
  assert.ok(seen.result.after < seen.result.before, `committed heap ${mb(seen.result.before)} -> ${mb(seen.result.after)}`);
  assert.deepEqual([seen.here, seen.inContext, seen.inWorker], ['undefined', 'undefined', 'undefined'], 'gc is visible to code after compactHeap');
});

test('a worker made after compactHeap grows its young generation (its --optimize-for-size is released)', async () => {
  const size = await workerYoungGeneration(['holdOptimizers', 'releaseOptimizers', 'compactHeap']);
  assert.ok(size > SMALL, `young generation ${mb(size)} for a worker made after compactHeap()`);
});

test('compactHeap leaves a user-exposed gc alone', async () => {
  const script = `
    const tiering = await import(${JSON.stringify(TIERING)});
    process.stdout.write(JSON.stringify({ result: tiering.compactHeap(), here: typeof globalThis.gc }));
  `;
  const { stdout } = await run(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: ROOT, timeout: 120_000 });
  assert.deepEqual(JSON.parse(stdout), { result: null, here: 'function' });
});
