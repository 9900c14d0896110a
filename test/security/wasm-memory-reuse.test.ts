// On V8 a WASI command runs in a memory lent from its thread's pool (core/wasm/memory-import.ts, memory-pool.ts),
// not in one made for it. A hostile tenant must find nothing of an earlier request in it, its own or another
// tenant's: the test guest's /remnant counts the bytes that a fresh memory has at zero (a static array, a heap
// block) but are not, then fills them for the next request to find. The control shows the guest does find
// what a dirty memory holds. Also: a memory the guest grew is never lent again (the next request starts at the
// module's initial size), and through `ten serve`'s pool two tenants alternating on one worker find nothing,
// on both engines.
import assert from 'node:assert/strict';
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { ENGINES, compileCommand } from '../../core/wasm/engine.ts';
import { MEMORY_IMPORT_MODULE, MEMORY_IMPORT_NAME, memoryShape } from '../../core/wasm/memory-import.ts';
import { memoryPoolStats } from '../../core/wasm/memory-pool.ts';
import { runWasiCommand, type WasiRunInput } from '../../core/wasm/wasi-run.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import { parseCgiResponse } from '../../runtimes/wasm/cgi.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import { request, servePlugins } from '../helpers.ts';
import { buildCGuests, wasmFunction } from '../wasm-guests.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasm-memory-'));
const { guest: GUEST, skip } = buildCGuests(work);
const devNull = openSync('/dev/null', 'r+');
after(() => {
  closeSync(devNull);
  rmSync(work, { recursive: true, force: true });
});

const CAP_PAGES = 256;
const input = (route: string, tenant: string): WasiRunInput => ({
  args: ['guest'],
  env: { REQUEST_METHOD: 'GET', PATH_INFO: route, TENANT: tenant },
  stdin: new Uint8Array(),
  dataDir: null,
  preopenAs: '/data',
  capPages: CAP_PAGES,
});

/** The body of a CGI answer (after the header block). */
function body(result: ReturnType<typeof runWasiCommand>): string {
  assert.ok(result.ok, result.ok ? '' : result.message);
  return Buffer.from(parseCgiResponse(result.stdout).body).toString('utf8').trim();
}

describe('a WASI command on V8 runs in a lent memory that holds nothing of earlier requests', { skip }, () => {
  test('tenants alternating on one thread find every byte at zero, and the memory is the same one, lent again', () => {
    const module = compileCommand(new Uint8Array(readFileSync(GUEST)), CAP_PAGES);
    const shape = memoryShape(module);
    assert.ok(shape, 'the command imports its memory');
    assert.equal(shape.maximum, CAP_PAGES);
    const before = memoryPoolStats();
    for (let i = 0; i < 12; i++) {
      const tenant = i % 2 === 0 ? 'alice' : 'bob';
      assert.equal(body(runWasiCommand(module, input('/remnant', tenant), devNull)), `0 0 ${shape.initial}`, `request ${i} (${tenant})`);
    }
    const afterRuns = memoryPoolStats();
    assert.equal(afterRuns.lent - before.lent, 12);
    assert.ok(afterRuns.reused - before.reused >= 11, `memories were lent again (${afterRuns.reused - before.reused} of 12)`);
  });

  test('control: two requests in one memory not zeroed between them, and the second finds the first one\'s bytes', () => {
    // What the pool's zeroing prevents, shown with node:wasi linked directly and one memory passed to both.
    const module = compileCommand(new Uint8Array(readFileSync(GUEST)), CAP_PAGES);
    const memory = new WebAssembly.Memory(memoryShape(module)!);
    // Loaded now, behind wasi-run.ts's filter for node:wasi's experimental warning (a static import runs first).
    const { WASI } = createRequire(import.meta.url)('node:wasi') as typeof import('node:wasi');
    const found: string[] = [];
    for (const tenant of ['alice', 'bob']) {
      const out = path.join(work, `control-${tenant}`);
      const fd = openSync(out, 'w');
      try {
        const wasi = new WASI({ version: 'preview1', args: ['guest'], env: { PATH_INFO: '/remnant', TENANT: tenant }, stdout: fd, returnOnExit: true });
        const instance = new WebAssembly.Instance(module, { wasi_snapshot_preview1: wasi.wasiImport, [MEMORY_IMPORT_MODULE]: { [MEMORY_IMPORT_NAME]: memory } } as WebAssembly.Imports);
        wasi.start(instance);
      } finally {
        closeSync(fd);
      }
      found.push(Buffer.from(parseCgiResponse(readFileSync(out)).body).toString('utf8').trim().split(' ')[0]!);
    }
    assert.deepEqual(found, ['0', '16384'], 'bob found every byte of the static array alice left');
  });

  test('a memory the guest grew is not lent again: the next request starts at the initial size', () => {
    const module = compileCommand(new Uint8Array(readFileSync(GUEST)), CAP_PAGES);
    const initial = memoryShape(module)!.initial;
    assert.equal(body(runWasiCommand(module, input('/size', 'alice'), devNull)), String(initial));
    const free = memoryPoolStats().free;
    const bomb = runWasiCommand(module, input('/bomb', 'alice'), devNull);
    assert.equal(bomb.ok, false);
    assert.equal(memoryPoolStats().free, free - 1, 'the grown memory stayed out of the pool');
    assert.equal(body(runWasiCommand(module, input('/size', 'bob'), devNull)), String(initial));
    assert.equal(body(runWasiCommand(module, input('/remnant', 'bob'), devNull)), `0 0 ${initial}`);
  });
});

const engineSkip = (engine: string): string | false => (engine === 'wasmtime' && !wasmtimeStatus().usable ? 'needs the wasmtime library: npm run fetch:wasmtime' : false);

for (const engine of ENGINES) {
  test(`through the pool (${engine}): two tenants alternating on one worker never find the other's bytes`, { skip: skip || engineSkip(engine), timeout: 120_000 }, async (t) => {
    const kernel = await createTestKernel({
      plugins: [...servePlugins, wasmRuntime],
      config: {
        pluginOptions: { 'runtime-wasm': { engine, threads: 1 } },
        services: { guest: wasmFunction(GUEST, { autoCreate: false }) },
        instances: { guest: ['alice', 'bob'] },
      },
    });
    t.after(() => kernel.close());
    for (let i = 0; i < 20; i++) {
      const tenant = i % 2 === 0 ? 'alice' : 'bob';
      const reply = await request(kernel, `${tenant}.guest.localhost`, '/remnant');
      assert.equal(reply.status, 200, reply.body);
      assert.match(reply.body.trim(), /^0 0 \d+$/, `request ${i} (${tenant})`);
    }
  });
}
