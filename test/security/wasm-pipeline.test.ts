// The next call waits in a worker's second slot while one runs (core/wasm/channels.ts), so the worker goes from one
// call to the next without sleeping. What must hold on that path as on the others: every answer is its own call's;
// a call behind a runaway moves to a worker that frees instead of waiting out the runaway's deadline; a call whose
// deadline passes in the slot is taken back without its worker being touched; and the call a terminated worker never
// started runs on another (V8; on wasmtime the guest is interrupted and the worker lives on). On both engines.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CHANNEL_BYTES } from '../../core/wasm/channel-wire.ts';
import { hopCounts } from '../../core/wasm/channels.ts';
import { ENGINES } from '../../core/wasm/engine.ts';
import { ModuleCache } from '../../core/wasm/module-cache.ts';
import { WasmPool, type CompiledModule } from '../../core/wasm/pool.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';
import { waitFor } from '../helpers.ts';
import { buildCGuests, loadModule } from '../wasm-guests.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasm-pipeline-'));
const guests = buildCGuests(work);
after(() => rmSync(work, { recursive: true, force: true }));

/** The runaway's deadline: what a call stuck behind it would wait; the tests' bounds are far below it. */
const RUNAWAY_MS = 4_000;

const counts = (): typeof hopCounts => ({ ...hopCounts });

/**
 * The pools' `staleMs` where a test places calls behind each other in one turn of the event loop: with the default
 * (2 ms) a loaded host that takes the thread away between two placements would make the first call look stale.
 */
const STALE_MS = 300;

const wasmtime = wasmtimeStatus();
const engineSkip = (engine: string): string | false => (engine === 'wasmtime' && !wasmtime.usable ? `needs the wasmtime library (npm run fetch:wasmtime): ${wasmtime.reason}` : false);

for (const engine of ENGINES) describe(`calls waiting in a worker's second slot (${engine})`, { skip: guests.skip || engineSkip(engine) }, () => {
  let guest: CompiledModule;
  let handler: CompiledModule;
  before(async () => {
    const cache = new ModuleCache(path.join(work, `cache-${engine}`));
    guest = await loadModule(cache, guests.guest, 256, engine);
    handler = await loadModule(cache, guests.handler, 256, engine);
  });
  /** Every call in the pool: on wasmtime a short call would otherwise run on the main thread, needing no worker. */
  const poolOf = (threads: number, staleMs = STALE_MS): WasmPool => new WasmPool({ threads, staleMs, inline: false });
  const call = (pool: WasmPool, key: string, route: string, deadlineMs: number) =>
    pool.runWasi(guest, { instanceKey: key, deadlineMs, args: ['guest'], env: { PATH_INFO: route }, stdin: new Uint8Array(), dataDir: null, preopenAs: '/data' });
  const echo = (pool: WasmPool, key: string, body: Uint8Array) =>
    pool.runWasi(handler, {
      instanceKey: key, deadlineMs: 30_000, args: ['handler'], stdin: body, dataDir: null, preopenAs: '/data',
      env: { REQUEST_METHOD: 'POST', PATH_INFO: '/echo', CONTENT_LENGTH: String(body.length) },
    });
  /** Every worker serves and has the code (a miss goes on the port and never waits in a slot). */
  const warm = async (pool: WasmPool, keys: string[]): Promise<void> => {
    await waitFor(() => pool.readyWorkers === pool.threads, 'every worker to serve');
    for (let round = 0; round < 3; round++) await Promise.all(keys.flatMap((key) => [call(pool, key, '/ok', 30_000), call(pool, key, '/ok', 30_000)]));
  };

  test('many calls in flight: the next ones wait in the second slots, and every answer is its own call\'s', async (t) => {
    const pool = poolOf(2);
    t.after(() => pool.close());
    await waitFor(() => pool.readyWorkers === 2, 'both workers to serve');
    for (let i = 0; i < 4; i++) await Promise.all([echo(pool, 'fn/echo:a', new Uint8Array(1)), echo(pool, 'fn/echo:b', new Uint8Array(1))]);
    const before = counts();
    const bodies = Array.from({ length: 200 }, (_, i) => randomBytes(1 + ((i * 997) % 20_000)));
    const outcomes = await Promise.all(bodies.map((body, i) => echo(pool, `fn/echo:${i % 3 === 0 ? '__proto__' : `t${i % 5}`}`, body)));
    for (const [i, outcome] of outcomes.entries()) {
      assert.ok(outcome.ok, outcome.ok ? '' : outcome.message);
      const stdout = Buffer.from(outcome.value.stdout);
      assert.ok(stdout.subarray(stdout.indexOf('\r\n\r\n') + 4).equals(bodies[i]!), `call ${i} got another call's answer or a changed one`);
    }
    // The first four are placed in one turn of the event loop: two on the idle workers, two behind them.
    assert.ok(hopCounts.queuedBehind - before.queuedBehind >= 2, `calls waited behind others ${hopCounts.queuedBehind - before.queuedBehind} times`);
    assert.equal(pool.running, 0);
  });

  test('a call waiting behind a runaway moves to the worker that frees, long before the runaway\'s deadline', async (t) => {
    const pool = poolOf(2);
    t.after(() => pool.close());
    await warm(pool, ['fn/quick:alice', 'fn/runaway:mallory', 'fn/late:bob']);
    const before = counts();
    // In one turn: alice's call takes the warmer worker, the runaway the other, and bob's waits behind the call
    // placed last, the runaway's.
    const quick = call(pool, 'fn/quick:alice', '/ok', 30_000);
    const runaway = call(pool, 'fn/runaway:mallory', '/loop', RUNAWAY_MS);
    const started = performance.now();
    const late = await call(pool, 'fn/late:bob', '/ok', 30_000);
    const waited = performance.now() - started;
    assert.ok(late.ok, late.ok ? '' : late.message);
    assert.ok((await quick).ok);
    // It may move once more (behind a fresh call elsewhere, if one started meanwhile), never stay behind the runaway.
    assert.ok(hopCounts.queuedBehind - before.queuedBehind >= 1, 'bob\'s call waited in a second slot');
    assert.ok(hopCounts.moved - before.moved >= 1, 'and moved from behind the runaway');
    assert.ok(waited < RUNAWAY_MS / 2, `bob's call took ${Math.round(waited)} ms behind a runaway of ${RUNAWAY_MS} ms`);
    const cut = await runaway;
    assert.equal(cut.ok ? 'ok' : cut.kind, 'timeout');
  });

  test('a call too big for a slot (it goes on the port, to an idle worker only) is served promptly while calls wait behind others under load', async (t) => {
    const pool = poolOf(2, 2);
    t.after(() => pool.close());
    await waitFor(() => pool.readyWorkers === 2, 'both workers to serve');
    for (let i = 0; i < 4; i++) await Promise.all([echo(pool, 'fn/echo:a', new Uint8Array(1)), echo(pool, 'fn/echo:b', new Uint8Array(1))]);
    let stopped = false;
    const load = Array.from({ length: 8 }, async (_, i) => {
      while (!stopped) assert.ok((await echo(pool, `fn/load:t${i}`, new Uint8Array(64))).ok);
    });
    try {
      await new Promise((resolve) => setTimeout(resolve, 200));
      const before = counts();
      // Over the buffer's size: it goes on the port, so only to an idle worker.
      const big = randomBytes(CHANNEL_BYTES + 1);
      const started = performance.now();
      const outcome = await pool.runWasi(handler, {
        instanceKey: 'fn/big:carol', deadlineMs: 5_000, args: ['handler'], stdin: big, dataDir: null, preopenAs: '/data',
        env: { REQUEST_METHOD: 'POST', PATH_INFO: '/echo', CONTENT_LENGTH: String(big.length) },
      });
      const waited = performance.now() - started;
      assert.ok(outcome.ok, outcome.ok ? '' : outcome.message);
      assert.ok(hopCounts.requestsOnPort > before.requestsOnPort, 'the big call went on the port');
      assert.ok(hopCounts.queuedBehind > before.queuedBehind, 'the load kept calls waiting behind others meanwhile');
      assert.ok(waited < 2_500, `the port call took ${Math.round(waited)} ms under load`);
    } finally {
      stopped = true;
      await Promise.all(load);
    }
  });

  test('while a call waits for an idle worker, later calls wait behind it, not in a slot ahead of it', async (t) => {
    const pool = poolOf(2, 2);
    t.after(() => pool.close());
    await warm(pool, ['fn/runaway:mallory', 'fn/runaway:trudy']);
    const big = randomBytes(CHANNEL_BYTES + 1);
    const before = counts();
    // In one turn: two runaways take both workers; the big call (on the port) waits for an idle one; the small call
    // could wait in a free slot, but would then run before the big one.
    const runaways = [call(pool, 'fn/runaway:mallory', '/loop', 300), call(pool, 'fn/runaway:trudy', '/loop', 300)];
    const bigCall = pool.runWasi(handler, {
      instanceKey: 'fn/big:carol', deadlineMs: 30_000, args: ['handler'], stdin: big, dataDir: null, preopenAs: '/data',
      env: { REQUEST_METHOD: 'POST', PATH_INFO: '/echo', CONTENT_LENGTH: String(big.length) },
    });
    const small = call(pool, 'fn/small:dave', '/ok', 30_000);
    assert.equal(hopCounts.queuedBehind - before.queuedBehind, 0, 'the small call did not take a slot ahead of the big one');
    for (const outcome of await Promise.all(runaways)) assert.equal(outcome.ok ? 'ok' : outcome.kind, 'timeout');
    for (const outcome of await Promise.all([bigCall, small])) assert.ok(outcome.ok, outcome.ok ? '' : outcome.message);
  });

  test('a call whose deadline passes in the slot is taken back unrun, and the worker running ahead of it is not touched', async (t) => {
    const pool = poolOf(1);
    t.after(() => pool.close());
    await warm(pool, ['fn/runaway:mallory']);
    const before = counts();
    const runaway = call(pool, 'fn/runaway:mallory', '/loop', RUNAWAY_MS);
    const started = performance.now();
    const waiting = await call(pool, 'fn/runaway:mallory', '/ok', 300);
    const waited = performance.now() - started;
    assert.equal(waiting.ok ? 'ok' : waiting.kind, 'timeout');
    assert.match(waiting.ok ? '' : waiting.message, /while waiting for a thread/);
    assert.equal(hopCounts.queuedBehind - before.queuedBehind, 1);
    assert.equal(hopCounts.withdrawn - before.withdrawn, 1, 'taken back from the slot');
    assert.ok(waited < RUNAWAY_MS / 2, `answered after ${Math.round(waited)} ms`);
    // The runaway still runs on its worker, which only its own deadline ends.
    assert.equal(pool.running, 1);
    const cut = await runaway;
    assert.equal(cut.ok ? 'ok' : cut.kind, 'timeout');
    assert.ok(performance.now() - started >= RUNAWAY_MS - 50, 'the runaway ran to its own deadline');
    assert.equal(hopCounts.requeued - before.requeued, 0);
  });

  test('the call behind a runaway cut at its deadline runs: on the replacement worker (V8), on the same one (wasmtime)', async (t) => {
    const pool = poolOf(1);
    t.after(() => pool.close());
    await warm(pool, ['fn/runaway:mallory', 'fn/next:alice']);
    const before = counts();
    const runaway = call(pool, 'fn/runaway:mallory', '/loop', 300);
    const next = call(pool, 'fn/next:alice', '/ok', 30_000);
    const cut = await runaway;
    assert.equal(cut.ok ? 'ok' : cut.kind, 'timeout');
    const served = await next;
    assert.ok(served.ok, served.ok ? '' : served.message);
    assert.equal(hopCounts.queuedBehind - before.queuedBehind, 1);
    // V8 terminates the worker, which never started the call behind: it goes to the replacement. On wasmtime the
    // guest traps at its epoch deadline and the same worker takes the next call.
    assert.equal(hopCounts.requeued - before.requeued, engine === 'v8' ? 1 : 0);
  });
});
