// One wasm tenant cannot starve the others: eight requests at all times to a runaway function (it loops until its
// deadline) used to take every pool thread, first in first out, and a well-behaved tenant's request waited
// behind them (8 s here; 4 s p99 in the report instead of 5 ms). Now each tenant waits in its own lane, holds at
// most its share of the threads (max(1, threads - 1) by default) while others wait, and keeps to it for a minute
// once a call of its ran into its deadline; free threads go to the lane served least recently.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ENGINES, compileModule } from '../../core/wasm/engine.ts';
import { ModuleCache } from '../../core/wasm/module-cache.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';
import { WasmPool, type CompiledModule } from '../../core/wasm/pool.ts';
import { sharedWasmPool } from '../../core/wasm/shared.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import { request, servePlugins, sleep, waitFor } from '../helpers.ts';
import { buildCGuests, loadModule, wasmFunction } from '../wasm-guests.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasm-fair-'));
const { handler: HANDLER, guest: GUEST, skip } = buildCGuests(work);
after(() => rmSync(work, { recursive: true, force: true }));

/**
 * The runaway's deadline: long enough that a request stuck behind it cannot pass for a slow machine (a
 * well-behaved request takes milliseconds; BOUND_MS is half of this), short because each test waits out a few.
 */
const DEADLINE_MS = 2_000;
/**
 * Until the runaway's first calls are cut it may hold every thread (nothing said it was a runaway, and a call
 * cannot be preempted): a request then waits for one of them, less than twice the deadline. From then on it
 * keeps to one thread and a well-behaved request, which takes milliseconds, must answer within half of it.
 */
const FIRST_BOUND_MS = 2 * DEADLINE_MS;
const BOUND_MS = DEADLINE_MS / 2;
const RUNAWAY = 8;

/** Keeps `clients` runaway calls in flight (each sends again when its call is cut) until stopped. */
function keepRunning(clients: number, send: () => Promise<unknown>): { stop: () => Promise<void> } {
  let stopped = false;
  const loops = Array.from({ length: clients }, async () => {
    while (!stopped) await send();
  });
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

async function timed<T>(run: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await run();
  return { value, ms: Math.round(performance.now() - started) };
}

describe('a runaway wasm tenant does not starve the others', { skip }, () => {
  let kernel: TestKernel;
  before(async () => {
    kernel = await createTestKernel({
      plugins: [...servePlugins, wasmRuntime],
      config: {
        // Two threads, as on the 2-core machine where it was found: one tenant may hold one of them.
        pluginOptions: { 'runtime-wasm': { threads: 2 } },
        services: {
          runaway: wasmFunction(GUEST, { autoCreate: false, wasm: { timeout: `${DEADLINE_MS}ms` } }),
          good: wasmFunction(HANDLER, { autoCreate: false }),
        },
        instances: { runaway: ['mallory'], good: ['alice'] },
      },
    });
  });
  after(() => kernel?.close());

  test('eight looping requests at all times: once its first calls are cut the runaway holds one thread, and another tenant answers in far less than its deadline', async (t) => {
    const pool = sharedWasmPool(kernel);
    assert.equal(pool.maxThreadsPerKey, 1);
    assert.equal((await request(kernel, 'alice.good.localhost', '/')).status, 200);
    const statuses: number[] = [];
    const runaway = keepRunning(RUNAWAY, async () => statuses.push((await request(kernel, 'mallory.runaway.localhost', '/loop', { timeoutMs: 60_000 })).status));
    try {
      await waitFor(() => pool.running + pool.queueSize >= RUNAWAY, 'the runaway requests to reach the pool', 20_000);
      const first = await timed(() => request(kernel, 'alice.good.localhost', '/', { timeoutMs: 60_000 }));
      assert.equal(first.value.status, 200, first.value.body);
      assert.ok(first.ms < FIRST_BOUND_MS, `the first well-behaved request waited ${first.ms} ms (runaway deadline ${DEADLINE_MS} ms)`);
      await waitFor(() => statuses.length > 0, 'a runaway request to be cut', 4 * DEADLINE_MS);
      // Asked over two of the runaway's deadlines, so some of them arrive as its calls are cut and replaced.
      const waits: number[] = [];
      const until = performance.now() + 2 * DEADLINE_MS;
      while (performance.now() < until) {
        const reply = await timed(() => request(kernel, 'alice.good.localhost', '/', { timeoutMs: 60_000 }));
        waits.push(reply.ms);
        assert.equal(reply.value.status, 200, reply.value.body);
        await sleep(100);
      }
      t.diagnostic(`well-behaved waits (ms): first ${first.ms}, then ${waits.join(' ')}`);
      // First in first out it waited behind the runaway's calls, up to a whole deadline each time.
      assert.ok(Math.max(...waits) < BOUND_MS, `the well-behaved tenant waited ${JSON.stringify(waits)} ms (runaway deadline ${DEADLINE_MS} ms)`);
    } finally {
      await runaway.stop();
    }
    assert.ok(statuses.length >= RUNAWAY && statuses.every((status) => status === 504), JSON.stringify(statuses));
  });
});

const engineSkip = (engine: string): string | false => (engine === 'wasmtime' && !wasmtimeStatus().usable ? 'needs the wasmtime library: npm run fetch:wasmtime' : false);

// On V8 a cut call's worker is replaced; on wasmtime the guest is interrupted and the worker lives on: the
// sharing must hold either way.
for (const engine of ENGINES) describe(`the pool shares its threads by caller key (${engine})`, { skip: skip || engineSkip(engine) }, () => {
  let module: CompiledModule;
  before(async () => {
    if (engine === 'v8') module = { hash: 'guest', module: compileModule(new Uint8Array(readFileSync(GUEST)), 256), capPages: 256 };
    else module = await loadModule(new ModuleCache(path.join(work, 'cache')), GUEST, 256, 'wasmtime');
  });
  const call = (pool: WasmPool, key: string, route: string, deadlineMs = DEADLINE_MS) =>
    pool.runWasi(module, { instanceKey: key, deadlineMs, args: ['guest'], env: { PATH_INFO: route }, stdin: new Uint8Array(), dataDir: null, preopenAs: '/data' });

  test('a wasm plugin is served while a function tenant runs away', async (t) => {
    const pool = new WasmPool({ threads: 2 });
    t.after(() => pool.close());
    await call(pool, 'plugin/p', '/ok');
    let cut = 0;
    const runaway = keepRunning(RUNAWAY, async () => (await call(pool, 'fn/runaway:mallory', '/loop')).ok || cut++);
    try {
      await waitFor(() => pool.running + pool.queueSize >= RUNAWAY, 'the runaway calls to reach the pool');
      const first = await timed(() => call(pool, 'plugin/p', '/ok', 60_000));
      assert.equal(first.value.ok, true, JSON.stringify(first.value));
      assert.ok(first.ms < FIRST_BOUND_MS, `the first plugin call waited ${first.ms} ms (runaway deadline ${DEADLINE_MS} ms)`);
      await waitFor(() => cut > 0, 'a runaway call to be cut', 4 * DEADLINE_MS);
      const waits: number[] = [];
      const until = performance.now() + 2 * DEADLINE_MS;
      while (performance.now() < until) {
        const outcome = await timed(() => call(pool, 'plugin/p', '/ok'));
        waits.push(outcome.ms);
        assert.equal(outcome.value.ok, true, JSON.stringify(outcome.value));
        await sleep(100);
      }
      t.diagnostic(`plugin waits (ms): first ${first.ms}, then ${waits.join(' ')}`);
      assert.ok(Math.max(...waits) < BOUND_MS, `the plugin waited ${JSON.stringify(waits)} ms (runaway deadline ${DEADLINE_MS} ms)`);
    } finally {
      await runaway.stop();
    }
  });

  test('alone, a tenant may use every thread; once a call of its ran into its deadline, only its share', async (t) => {
    const pool = new WasmPool({ threads: 2 });
    t.after(() => pool.close());
    assert.equal(pool.maxThreadsPerKey, 1);
    const both = [call(pool, 'fn/busy:bob', '/loop', 1_000), call(pool, 'fn/busy:bob', '/loop', 1_000)];
    assert.equal(pool.running, 2, 'a tenant alone borrows the idle thread');
    for (const outcome of await Promise.all(both)) assert.equal(outcome.ok ? 'ok' : outcome.kind, 'timeout');
    // On wasmtime the answers come at the deadline and each thread is free once its guest trapped, a moment later.
    await waitFor(() => pool.running === 0, 'the cut calls to leave their threads');
    const again = [call(pool, 'fn/busy:bob', '/loop', 1_000), call(pool, 'fn/busy:bob', '/loop', 1_000)];
    assert.equal(pool.running, 1, 'a tenant whose calls were cut keeps to its share, idle pool or not');
    assert.equal(pool.queueSize, 1);
    for (const outcome of await Promise.all(again)) assert.equal(outcome.ok ? 'ok' : outcome.kind, 'timeout');
  });

  test('a call waiting for a thread past its deadline times out without running', async (t) => {
    // Every call in the pool: on wasmtime a short call would otherwise run on the main thread, needing no thread
    // (test/e2e/wasm-inline.test.ts), and the one below would be answered at once.
    const pool = new WasmPool({ threads: 1, inline: false });
    t.after(() => pool.close());
    // Holds the only thread well past the waiting call's 300 ms (both deadlines are timers of this thread).
    const looping = call(pool, 'fn/runaway:mallory', '/loop', 1_000);
    await waitFor(() => pool.running === 1, 'the loop to run');
    const waiting = await call(pool, 'fn/runaway:mallory', '/ok', 300);
    assert.equal(waiting.ok ? 'ok' : waiting.kind, 'timeout');
    assert.match(waiting.ok ? '' : waiting.message, /while waiting for a thread/);
    assert.equal(pool.queueSize, 0, 'the timed-out call left its lane');
    assert.equal((await looping).ok, false);
  });

  // V8 runs every call in the pool; wasmtime runs short ones on the main thread.
  if (engine === 'wasmtime') test('a short call does not wait for the thread a runaway holds: it runs on the main thread', async (t) => {
    const pool = new WasmPool({ threads: 1 });
    t.after(() => pool.close());
    const looping = call(pool, 'fn/runaway:mallory', '/loop', 1_000);
    await waitFor(() => pool.running === 1, 'the loop to run');
    const served = await call(pool, 'fn/neighbour:alice', '/ok', 300);
    assert.ok(served.ok, JSON.stringify(served));
    assert.equal((await looping).ok, false);
  });
});
