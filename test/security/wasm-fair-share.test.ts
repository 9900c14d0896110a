// One wasm tenant cannot starve the others: eight requests at all times to a runaway function (it loops until its
// deadline) used to take every pool thread, first in first out, and a well-behaved tenant's request waited
// behind them (8 s here; 4 s p99 in the report instead of 5 ms). Now each tenant holds at most its share of the threads
// (max(1, threads - 1) by default) and waits in its own lane; free threads go to the lanes in turn.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { compileModule } from '../../core/wasm/engine.ts';
import { WasmPool, type CompiledModule } from '../../core/wasm/pool.ts';
import { sharedWasmPool } from '../../core/wasm/shared.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import { request, servePlugins, sleep, waitFor } from '../helpers.ts';
import { buildCGuests, wasmFunction } from '../wasm-guests.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasm-fair-'));
const { handler: HANDLER, guest: GUEST, skip } = buildCGuests(work);
after(() => rmSync(work, { recursive: true, force: true }));

/** The runaway's deadline: long, so that a request stuck behind it cannot pass for a slow machine. */
const DEADLINE_MS = 4_000;
/** A well-behaved request must answer within half of it (it takes milliseconds when it gets a thread). */
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

  test('eight looping requests at all times hold one thread; another tenant answers meanwhile, in far less than their deadline', async (t) => {
    const pool = sharedWasmPool(kernel);
    assert.equal(pool.maxThreadsPerKey, 1);
    assert.equal((await request(kernel, 'alice.good.localhost', '/')).status, 200);
    const statuses: number[] = [];
    const runaway = keepRunning(RUNAWAY, async () => statuses.push((await request(kernel, 'mallory.runaway.localhost', '/loop', { timeoutMs: 60_000 })).status));
    try {
      await waitFor(() => pool.running + pool.queueSize >= RUNAWAY, 'the runaway requests to reach the pool', 20_000);
      // Asked over two of the runaway's deadlines, so some of them arrive as its calls are cut and replaced.
      const waits: number[] = [];
      const until = performance.now() + 2 * DEADLINE_MS;
      while (performance.now() < until) {
        const sent = performance.now();
        const reply = await request(kernel, 'alice.good.localhost', '/', { timeoutMs: 60_000 });
        waits.push(Math.round(performance.now() - sent));
        assert.equal(reply.status, 200, reply.body);
        await sleep(100);
      }
      t.diagnostic(`well-behaved waits (ms): ${waits.join(' ')}`);
      // First in first out it waited behind the runaway's calls, up to a whole deadline each time.
      assert.ok(Math.max(...waits) < BOUND_MS, `the well-behaved tenant waited ${JSON.stringify(waits)} ms (runaway deadline ${DEADLINE_MS} ms)`);
    } finally {
      await runaway.stop();
    }
    assert.ok(statuses.length >= RUNAWAY && statuses.every((status) => status === 504), JSON.stringify(statuses));
  });
});

describe('the pool shares its threads by caller key', { skip }, () => {
  let module: CompiledModule;
  before(() => {
    module = { hash: 'guest', module: compileModule(new Uint8Array(readFileSync(GUEST)), 256), capPages: 256 };
  });
  const call = (pool: WasmPool, key: string, route: string, deadlineMs = DEADLINE_MS) =>
    pool.runWasi(module, { instanceKey: key, deadlineMs, args: ['guest'], env: { PATH_INFO: route }, stdin: new Uint8Array(), dataDir: null, preopenAs: '/data' });

  test('a wasm plugin is served while a function tenant runs away', async (t) => {
    const pool = new WasmPool({ threads: 2 });
    t.after(() => pool.close());
    await call(pool, 'plugin/p', '/ok');
    const runaway = keepRunning(RUNAWAY, () => call(pool, 'fn/runaway:mallory', '/loop'));
    try {
      await waitFor(() => pool.running + pool.queueSize >= RUNAWAY, 'the runaway calls to reach the pool');
      const waits: number[] = [];
      const until = performance.now() + 2 * DEADLINE_MS;
      while (performance.now() < until) {
        const sent = performance.now();
        const outcome = await call(pool, 'plugin/p', '/ok');
        waits.push(Math.round(performance.now() - sent));
        assert.equal(outcome.ok, true, JSON.stringify(outcome));
        await sleep(100);
      }
      t.diagnostic(`plugin waits (ms): ${waits.join(' ')}`);
      assert.ok(Math.max(...waits) < BOUND_MS, `the plugin waited ${JSON.stringify(waits)} ms (runaway deadline ${DEADLINE_MS} ms)`);
    } finally {
      await runaway.stop();
    }
  });

  test('a call waiting for a thread past its deadline times out without running', async (t) => {
    const pool = new WasmPool({ threads: 1 });
    t.after(() => pool.close());
    const looping = call(pool, 'fn/runaway:mallory', '/loop');
    await waitFor(() => pool.running === 1, 'the loop to run');
    const waiting = await call(pool, 'fn/runaway:mallory', '/ok', 300);
    assert.equal(waiting.ok ? 'ok' : waiting.kind, 'timeout');
    assert.match(waiting.ok ? '' : waiting.message, /while waiting for a thread/);
    assert.equal(pool.queueSize, 0, 'the timed-out call left its lane');
    assert.equal((await looping).ok, false);
  });
});
