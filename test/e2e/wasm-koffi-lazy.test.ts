// koffi's native addon (the wasmtime bindings) is loaded only where wasmtime runs: a server whose wasm services all
// run on V8 never maps it, in its main thread or its pool workers (threads of this process, so /proc/self/maps
// shows them all). A worker terminated while the addon was loading used to abort the whole process.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import { request, servePlugins } from '../helpers.ts';
import { buildCGuests, wasmFunction } from '../wasm-guests.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-koffi-lazy-'));
const { handler: HANDLER, skip: clangSkip } = buildCGuests(work);
const status = wasmtimeStatus();
const skip = clangSkip || (status.usable ? false : `${status.reason} (CI fetches it: .ci/run)`);
after(() => rmSync(work, { recursive: true, force: true }));

const koffiMapped = (): boolean => readFileSync('/proc/self/maps', 'utf8').includes('koffi');

// In this order, in one process: first V8 only, then wasmtime (the control that the probe sees koffi at all).
test('a server running wasm on V8 only never loads koffi; wasmtime loads it on first use', { skip, timeout: 180_000 }, async () => {
  assert.equal(koffiMapped(), false, 'koffi is not loaded before any server starts');
  const v8 = await createTestKernel({ plugins: [...servePlugins, wasmRuntime], config: { services: { hello: wasmFunction(HANDLER, { wasm: { engine: 'v8' } }) } } });
  try {
    for (const tenant of ['alice', 'bob']) {
      const reply = await request(v8, `${tenant}.hello.localhost`, '/');
      assert.equal(reply.status, 200, reply.body);
    }
    assert.equal(koffiMapped(), false, 'a V8-only server loaded koffi');
  } finally {
    await v8.close();
  }

  const wasmtime = await createTestKernel({
    plugins: [...servePlugins, wasmRuntime],
    config: { services: { hello: wasmFunction(HANDLER, { wasm: { engine: 'wasmtime', timeout: '60s' }, startupTimeout: '120s' }) } },
  });
  try {
    const reply = await request(wasmtime, 'alice.hello.localhost', '/', { timeoutMs: 120_000 });
    assert.equal(reply.status, 200, reply.body);
    assert.equal(koffiMapped(), true, 'a wasmtime request ran without koffi mapped: the probe is blind');
  } finally {
    await wasmtime.close();
  }
});
