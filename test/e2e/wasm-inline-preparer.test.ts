// The main thread's WASI configs and their captures are made on a thread of their own, which also frees the spent
// stores (core/wasm/wasmtime/config-preparer.ts): every answer is still the request's own, the captures it makes
// hold their caps, descriptors stay flat, and when the thread is gone the main thread carries on alone.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ModuleCache } from '../../core/wasm/module-cache.ts';
import { WasmPool, type CompiledModule, type WasiCallOptions } from '../../core/wasm/pool.ts';
import { configCounts, configPreparerThread } from '../../core/wasm/wasmtime/config-preparer.ts';
import { SLOTS } from '../../core/wasm/wasmtime/config-slots.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';
import type { WasmCallOutcome } from '../../core/wasm/types.ts';
import { waitFor } from '../helpers.ts';
import { buildCGuests, loadModule } from '../wasm-guests.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-preparer-'));
const { handler: HANDLER, guest: GUEST, skip: clangSkip } = buildCGuests(work);
const status = wasmtimeStatus();
const skip = clangSkip || (status.usable ? false : `${status.reason} (CI fetches it: .ci/run)`);
after(() => rmSync(work, { recursive: true, force: true }));

const text = (outcome: WasmCallOutcome): string => {
  assert.ok(outcome.ok, `call failed: ${outcome.ok ? '' : `${outcome.kind}: ${outcome.message}`}`);
  return Buffer.from((outcome.value as { stdout: Uint8Array }).stdout).toString('utf8');
};
const memfds = (): number =>
  readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:tenement-wasmtime-');
    } catch {
      return false;
    }
  }).length;
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe("the main thread's WASI configs, made on a thread of their own", { skip }, () => {
  let pool: WasmPool;
  let handler: CompiledModule;
  let guest: CompiledModule;
  const data = path.join(work, 'data');
  before(async () => {
    mkdirSync(data);
    pool = new WasmPool({ threads: 1 });
    const cache = new ModuleCache(path.join(work, 'cache'));
    handler = await loadModule(cache, HANDLER, 256, 'wasmtime');
    guest = await loadModule(cache, GUEST, 256, 'wasmtime');
  });
  after(async () => {
    await pool?.close();
  });

  const hello = (tenant: string, query: string): WasiCallOptions => ({
    instanceKey: tenant,
    deadlineMs: 5_000,
    args: ['guest'],
    env: { PATH_INFO: '/', REQUEST_METHOD: 'GET', TENEMENT_INSTANCE: tenant, QUERY_STRING: query },
    stdin: new Uint8Array(),
    dataDir: data,
    preopenAs: '/data',
  });

  /** Calls until the main thread took a config from the thread (it starts with the first inline call). */
  async function untilTaken(): Promise<void> {
    const taken = configCounts.taken;
    for (let i = 0; i < 200 && configCounts.taken === taken; i++) {
      await pool.runWasi(handler, hello('warm', 'up'));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.ok(configCounts.taken > taken, 'a config was taken from the thread');
  }

  test("its configs serve every tenant's request with that request's own output, and descriptors stay flat", async () => {
    await untilTaken();
    const takenBefore = configCounts.taken;
    const before = memfds();
    for (let i = 0; i < 300; i++) {
      const tenant = ['alice', 'bob', '__proto__'][i % 3]!;
      const outcome = await pool.runWasi(handler, hello(tenant, `${tenant}-${i}`));
      assert.equal(text(outcome), `Content-Type: text/plain\r\n\r\nHello from C, ${tenant}! (GET /?${tenant}-${i})\n`);
      assert.deepEqual(outcome.logs, [{ stream: 'stderr', line: `GET /` }]);
      await turn();
    }
    assert.ok(configCounts.taken - takenBefore >= 150, `most stores took the thread's config: ${JSON.stringify(configCounts)}`);
    // The thread frees the spent stores a moment later: their descriptors come back.
    await waitFor(() => memfds() <= before + 4, `memfds back near ${before} (now ${memfds()})`);
  });

  test('the captures it makes hold their caps: 2 MiB of stdout is moved to the pool, which sends all of it', async () => {
    await untilTaken();
    const outcome = await pool.runWasi(guest, { ...hello('big', ''), env: { PATH_INFO: '/twomb' }, dataDir: null });
    assert.equal(outcome.timing?.inline, 'moved');
    const body = text(outcome).split('\r\n\r\n')[1]!;
    assert.equal(body.length, 2 * 1024 * 1024);
    assert.ok(/^y+$/.test(body));
  });

  test('when the thread is gone, the main thread makes its own configs and frees its own stores', async () => {
    await untilTaken();
    await configPreparerThread()!.terminate();
    assert.equal(configPreparerThread(), null);
    const madeBefore = configCounts.madeHere;
    const takenBefore = configCounts.taken;
    const before = memfds();
    for (let i = 0; i < 50; i++) {
      assert.equal(text(await pool.runWasi(handler, hello('carol', `q${i}`))), `Content-Type: text/plain\r\n\r\nHello from C, carol! (GET /?q${i})\n`);
      await turn();
    }
    // The configs left in their slots are still taken; none is made after them.
    assert.ok(configCounts.taken - takenBefore <= SLOTS, JSON.stringify(configCounts));
    assert.ok(configCounts.madeHere - madeBefore >= 50 - SLOTS, JSON.stringify(configCounts));
    assert.equal(configPreparerThread(), null, 'not started again');
    await waitFor(() => memfds() <= before + 4, `memfds back near ${before} (now ${memfds()})`);
  });
});
