// Short wasmtime calls on the main thread (core/wasm/wasmtime/inline.ts): they answer as the pool does; a guest
// that reaches for a file, a sleep or runs away is stopped before anything it did shows and runs again in the
// pool, exactly once; the main thread is never held for a guest's deadline; `inline: false` keeps every call in
// the pool.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import { ModuleCache } from '../../core/wasm/module-cache.ts';
import { WasmPool, type CompiledModule, type WasiCallOptions } from '../../core/wasm/pool.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';
import { preparedCount } from '../../core/wasm/wasmtime/prepared.ts';
import type { WasmCallOutcome } from '../../core/wasm/types.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import metrics from '../../plugins/metrics/index.ts';
import { request, servePlugins } from '../helpers.ts';
import { buildCGuests, loadModule, wasmFunction } from '../wasm-guests.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-inline-'));
const { handler: HANDLER, guest: GUEST, skip: clangSkip } = buildCGuests(work);
const status = wasmtimeStatus();
const skip = clangSkip || (status.usable ? false : `${status.reason} (CI fetches it: .ci/run)`);
after(() => rmSync(work, { recursive: true, force: true }));

const text = (outcome: WasmCallOutcome): string => {
  assert.ok(outcome.ok, `call failed: ${outcome.ok ? '' : `${outcome.kind}: ${outcome.message}`}`);
  return Buffer.from((outcome.value as { stdout: Uint8Array }).stdout).toString('utf8');
};

/** The longest the event loop went without running a 5 ms interval while `work` ran. */
async function longestStall<T>(work: () => Promise<T>): Promise<{ result: T; stallMs: number }> {
  let last = performance.now();
  let stallMs = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    stallMs = Math.max(stallMs, now - last);
    last = now;
  }, 5);
  try {
    const result = await work();
    stallMs = Math.max(stallMs, performance.now() - last);
    return { result, stallMs };
  } finally {
    clearInterval(timer);
  }
}

describe('wasmtime calls on the main thread', { skip }, () => {
  let pool: WasmPool;
  let guest: CompiledModule;
  /** The same guest with another cap, so another module: the runaways' long calls bench their module (not `guest`). */
  let rogue: CompiledModule;
  let handler: CompiledModule;
  const data = path.join(work, 'data');
  before(async () => {
    mkdirSync(data);
    pool = new WasmPool({ threads: 2 });
    const cache = new ModuleCache(path.join(work, 'cache'));
    guest = await loadModule(cache, GUEST, 256, 'wasmtime');
    rogue = await loadModule(cache, GUEST, 255, 'wasmtime');
    assert.notEqual(rogue.hash, guest.hash);
    handler = await loadModule(cache, HANDLER, 256, 'wasmtime');
  });
  after(async () => {
    await pool?.close();
  });

  /**
   * Calls until one runs on the main thread (at most 4 tries): on a busy host any call may take longer than the
   * main thread's 2 ms budget (a first call on cold caches, a stall) and be moved to the pool, which is correct.
   */
  const onMainThread = async (module: CompiledModule, call: WasiCallOptions): Promise<WasmCallOutcome> => {
    let outcome = await pool.runWasi(module, call);
    for (let i = 0; i < 3 && outcome.timing?.inline === 'moved'; i++) outcome = await pool.runWasi(module, call);
    assert.equal(outcome.timing?.inline, 'ran', 'ran on the main thread');
    return outcome;
  };

  const options = (key: string, route: string, extra: Partial<WasiCallOptions> = {}): WasiCallOptions => ({
    instanceKey: key,
    deadlineMs: 5_000,
    args: ['guest'],
    env: { PATH_INFO: route, REQUEST_METHOD: 'GET', DATA_DIR: '/data', TENEMENT_INSTANCE: key },
    stdin: new Uint8Array(),
    dataDir: data,
    preopenAs: '/data',
    ...extra,
  });

  test('a short call runs on the main thread and answers as the pool does', async () => {
    const inline = await onMainThread(handler, options('same', '/'));
    const only = new WasmPool({ threads: 1, inline: false });
    try {
      const pooled = await only.runWasi(handler, options('same', '/'));
      assert.equal(pooled.timing?.inline, undefined, 'inline: false keeps the call in the pool');
      assert.equal(text(inline), text(pooled));
    } finally {
      await only.close();
    }
    assert.match(text(inline), /^Content-Type: text\/plain\r\n\r\nHello from C, same! \(GET \/\?\)\n$/);
    // The exit code, the guest's stderr lines and a trap come back as from a worker.
    const exited = await onMainThread(guest, options('exit', '/exit', { dataDir: null }));
    assert.ok(exited.ok);
    assert.equal((exited.value as { exitCode: number }).exitCode, 3);
    const trapped = await onMainThread(guest, options('trap', '/trap', { dataDir: null }));
    assert.ok(!trapped.ok && trapped.kind === 'trap', JSON.stringify(trapped));
    const logged = await pool.runWasi(handler, options('logs', '/'));
    assert.deepEqual(logged.logs, [{ stream: 'stderr', line: 'GET /' }]);
  });

  test('a guest that opens a file is stopped before it does, and runs once in the pool', async () => {
    const tenant = path.join(data, 'visits');
    rmSync(tenant, { force: true });
    const placements: Array<string | undefined> = [];
    for (let i = 1; i <= 3; i++) {
      const outcome = await pool.runWasi(handler, options('visitor', '/visits'));
      assert.match(text(outcome), new RegExp(`"visits":${i}\\}`), 'counted once per request: the main thread never wrote');
      // Its logs are the pool run's only: the main thread's attempt printed the same line, which was dropped.
      assert.deepEqual(outcome.logs, [{ stream: 'stderr', line: 'GET /visits' }]);
      placements.push(outcome.timing?.inline);
    }
    // Moved from the main thread, then benched: the instance's next calls go straight to the pool.
    assert.equal(placements[0], 'moved');
    assert.equal(placements[2], undefined, placements.join(', '));
    assert.equal(readFileSync(tenant, 'utf8'), '3\n');
    const after = await pool.runWasi(handler, options('visitor', '/'));
    assert.equal(after.timing?.inline, undefined);
    // Another tenant of the same module is not benched with it.
    await onMainThread(handler, options('neighbour', '/'));
  });

  test('a runaway holds the main thread for a few ms, not its deadline, and is then benched', async () => {
    const { result, stallMs } = await longestStall(() => pool.runWasi(rogue, options('runaway', '/loop', { dataDir: null, deadlineMs: 1_000 })));
    assert.ok(!result.ok && result.kind === 'timeout', JSON.stringify(result));
    assert.notEqual(result.timing?.inline, 'ran', 'stopped in the pool at its deadline, not on the main thread');
    assert.ok(stallMs < 500, `the event loop stalled ${Math.round(stallMs)} ms (the runaway's deadline is 1000 ms)`);
    // Each attempt adds its budget to the instance's average: within a few the instance stays in the pool.
    let benched = false;
    for (let i = 0; i < 8 && !benched; i++) {
      const outcome = await pool.runWasi(rogue, options('runaway', '/loop', { dataDir: null, deadlineMs: 100 }));
      assert.ok(!outcome.ok && outcome.kind === 'timeout');
      const ok = await pool.runWasi(rogue, options('runaway', '/ok', { dataDir: null }));
      benched = ok.timing?.inline === undefined;
    }
    assert.ok(benched, 'a guest that keeps running past the budget is sent to the pool');
    // Its module with it: a fresh tenant of it gets no fresh tries. Another module is not affected.
    assert.equal((await pool.runWasi(rogue, options('fresh-tenant', '/ok', { dataDir: null }))).timing?.inline, undefined);
    await onMainThread(guest, options('fresh-tenant', '/ok', { dataDir: null }));
  });

  test('a guest that sleeps (a host call no epoch interrupts) never blocks the main thread', async () => {
    const { result, stallMs } = await longestStall(() => pool.runWasi(rogue, options('sleeper', '/sleep', { dataDir: null, deadlineMs: 300 })));
    assert.ok(!result.ok && result.kind === 'timeout', JSON.stringify(result));
    assert.ok(stallMs < 250, `the event loop stalled ${Math.round(stallMs)} ms (the guest sleeps 20 s)`);
  });

  test('memory and output caps hold for a guest started on the main thread', async () => {
    const bomb = await pool.runWasi(rogue, options('bomb', '/bomb', { dataDir: null }));
    assert.ok(!bomb.ok && bomb.kind === 'out-of-memory', JSON.stringify(bomb).slice(0, 300));
    const big = await pool.runWasi(rogue, options('big', '/big', { dataDir: null }));
    assert.ok(!big.ok && big.kind === 'output-too-large', JSON.stringify(big).slice(0, 300));
  });

  test('traps from the main thread come back as traps: out of bounds, stack overflow; the host lives on', async () => {
    const oob = await onMainThread(guest, options('oob', '/oob', { dataDir: null }));
    assert.ok(!oob.ok && oob.kind === 'trap' && /out of bounds/.test(oob.message), JSON.stringify(oob).slice(0, 300));
    // Deep enough to take the first call past the budget (new stack pages): wherever it ends, it is a trap.
    const deep = await pool.runWasi(rogue, options('deep', '/deep', { dataDir: null }));
    assert.ok(!deep.ok && deep.kind === 'trap' && /call stack exhausted/.test(deep.message), JSON.stringify(deep).slice(0, 300));
    assert.equal(text(await pool.runWasi(guest, options('after-traps', '/ok', { dataDir: null }))), 'Content-Type: text/plain\r\n\r\nok\n');
  });

  test('a response larger than the main thread takes is moved, and the pool sends all of it', async () => {
    const outcome = await pool.runWasi(guest, options('two-mb', '/twomb', { dataDir: null }));
    assert.equal(outcome.timing?.inline, 'moved');
    const body = text(outcome).split('\r\n\r\n')[1]!;
    assert.equal(body.length, 2 * 1024 * 1024);
    assert.ok(/^y+$/.test(body));
  });

  test("tenants on the main thread see only their own request, never another's", async () => {
    // The store made ahead after alice's call serves bob's: it carries nothing of hers.
    const hello = (key: string) => (options(key, '/', { env: { PATH_INFO: '/', REQUEST_METHOD: 'GET', TENEMENT_INSTANCE: key, QUERY_STRING: `${key}-secret` } }));
    await onMainThread(handler, hello('alice'));
    await new Promise((resolve) => setImmediate(resolve));
    const bob = await onMainThread(handler, hello('bob'));
    assert.equal(text(bob), 'Content-Type: text/plain\r\n\r\nHello from C, bob! (GET /?bob-secret)\n');
    // The probe dumps its environment and tries the host's files: opening one moves it to the pool, where its
    // only file system is its DATA_DIR and its environment only what the host gave it.
    const probe = await pool.runWasi(guest, options('carol', '/probe', { env: { PATH_INFO: '/probe' } }));
    assert.notEqual(probe.timing?.inline, 'ran');
    const seen = JSON.parse(text(probe).split('\r\n\r\n')[1]!);
    assert.deepEqual(Object.keys(seen.env).sort(), ['PATH_INFO']);
    for (const [file, result] of Object.entries(seen.open as Record<string, string>)) assert.notEqual(result, 'opened', `${file} opened`);
  });

  test('names like __proto__ are plain instance keys', async () => {
    for (const key of ['__proto__', 'constructor', 'hasOwnProperty']) {
      const outcome = await pool.runWasi(guest, options(key, '/ok', { dataDir: null }));
      assert.equal(text(outcome), 'Content-Type: text/plain\r\n\r\nok\n');
    }
  });
});

describe('wasmtime calls on the main thread, through the tier', { skip }, () => {
  const placements = (text: string): Record<string, number> =>
    Object.fromEntries([...text.matchAll(/^tenement_wasm_main_thread_calls_total\{service="c",placement="(\w+)"\} (\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));

  test('requests are served from the main thread and counted by placement; a file-touching one moves, counted once', async () => {
    const kernel = await createTestKernel({ plugins: [...servePlugins, wasmRuntime, metrics], config: { services: { c: wasmFunction(HANDLER, { wasm: { engine: 'wasmtime' } }) } } });
    try {
      for (let i = 0; i < 3; i++) assert.equal((await request(kernel, 'alice.c.localhost', '/?n=1')).body, 'Hello from C, alice! (GET /?n=1)\n');
      assert.equal((await request(kernel, 'bob.c.localhost', '/visits')).body, '{"tenant":"bob","visits":1}\n');
      assert.equal((await request(kernel, 'bob.c.localhost', '/visits')).body, '{"tenant":"bob","visits":2}\n');
      const counted = placements((await request(kernel, 'localhost', '/metrics')).body);
      // Alice's three calls ran there (one may be moved on a busy host, past the 2 ms budget); bob's first moved,
      // and his second went straight to the pool (benched): not counted.
      assert.ok(counted.ran! >= 2 && counted.moved! >= 1 && counted.ran! + counted.moved! === 4, JSON.stringify(counted));
      // The tenant's log has each request's line once: the main thread's attempt wrote nothing anyone sees.
      const lines = kernel.instances.get('c', 'bob')!.logs.query().map((entry) => entry.line);
      assert.deepEqual(lines.filter((line) => line.includes('GET /visits')), ['GET /visits', 'GET /visits']);
    } finally {
      await kernel.close();
    }
  });

  test("a hibernation keeps the module's store made ahead for the wake's request; a stop drops it", async () => {
    const kernel = await createTestKernel({ plugins: [...servePlugins, wasmRuntime, metrics], config: { services: { c: wasmFunction(HANDLER, { wasm: { engine: 'wasmtime' } }) } } });
    try {
      const before = preparedCount();
      // A call on the main thread leaves the module's next store there (one on a busy host may be moved: try again).
      for (let i = 0; i < 4 && preparedCount() === before; i++) assert.equal((await request(kernel, 'alice.c.localhost', '/')).status, 200);
      assert.equal(preparedCount(), before + 1, 'a store made ahead on the main thread');
      const alice = kernel.instances.get('c', 'alice')!;
      await kernel.hibernate(alice, 'test');
      assert.equal(alice.state, 'hibernated');
      assert.equal(preparedCount(), before + 1, 'the hibernation kept it: it is the module\'s, no tenant state');
      // The wake's request runs in it and sees its own request only; another tenant's after it, likewise.
      assert.equal((await request(kernel, 'alice.c.localhost', '/?woken')).body, 'Hello from C, alice! (GET /?woken)\n');
      assert.equal((await request(kernel, 'bob.c.localhost', '/')).body, 'Hello from C, bob! (GET /?)\n');
      assert.equal(preparedCount(), before + 1);
      // A stop (a removal, a deploy) frees what was made ahead after its tenant's last call.
      const last = kernel.instances.get('c', 'bob')!;
      await kernel.removeInstance(last);
      assert.equal(preparedCount(), before, 'the stop dropped it');
    } finally {
      await kernel.close();
    }
  });

  test("`inline: false` in the runtime's options keeps every call in the pool; a wrong type names the field", async () => {
    const kernel = await createTestKernel({
      plugins: [...servePlugins, wasmRuntime, metrics],
      config: { services: { c: wasmFunction(HANDLER, { wasm: { engine: 'wasmtime' } }) }, pluginOptions: { 'runtime-wasm': { inline: false } } },
    });
    try {
      assert.equal((await request(kernel, 'alice.c.localhost', '/')).status, 200);
      assert.deepEqual(placements((await request(kernel, 'localhost', '/metrics')).body), {});
    } finally {
      await kernel.close();
    }
    await assert.rejects(
      createTestKernel({ plugins: [...servePlugins, wasmRuntime], config: { services: {}, pluginOptions: { 'runtime-wasm': { inline: 'yes' } } } }),
      (error: Error) => /inline/.test(error.message) && /boolean/.test(error.message),
    );
  });
});
