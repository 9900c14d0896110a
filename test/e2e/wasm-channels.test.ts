// The pool's hop to its workers (core/wasm/channels.ts): a WASI call or a component's handler call and its answer
// through a worker's shared buffer when they fit, through its port when they do not, on both engines. Every answer must be its own request's,
// byte for byte, with many calls in flight from many tenants at once.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { CHANNEL_BYTES } from '../../core/wasm/channel-wire.ts';
import { hopCounts } from '../../core/wasm/channels.ts';
import { ModuleCache } from '../../core/wasm/module-cache.ts';
import { WasmPool } from '../../core/wasm/pool.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';
import { buildComponent, type ComponentArtifact } from '../../core/wasm/component/index.ts';
import { FIXTURES } from '../helpers.ts';
import { buildCGuests, loadModule } from '../wasm-guests.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasm-channels-'));
const guests = buildCGuests(dir);
const wasmtime = wasmtimeStatus();

for (const engine of ['v8', 'wasmtime'] as const) {
  const skip = guests.skip || (engine === 'wasmtime' && !wasmtime.usable ? `needs the wasmtime library (npm run fetch:wasmtime): ${wasmtime.usable ? '' : wasmtime.reason}` : false);
  test(`WASI calls through the pool's channels answer each request with its own bytes (${engine})`, { skip }, async (t) => {
    const pool = new WasmPool({ threads: 2 });
    t.after(() => pool.close());
    const compiled = await loadModule(new ModuleCache(path.join(dir, `cache-${engine}`)), guests.handler, 256, engine);
    const call = (key: string, body: Uint8Array, env: Record<string, string> = {}) =>
      pool.runWasi(compiled, {
        instanceKey: key, deadlineMs: 30_000, args: ['handler'], stdin: body, dataDir: null, preopenAs: '/data',
        env: { REQUEST_METHOD: 'POST', PATH_INFO: '/echo', CONTENT_LENGTH: String(body.length), ...env },
      });
    const bodyOf = (stdout: Uint8Array): Buffer => {
      const bytes = Buffer.from(stdout);
      return bytes.subarray(bytes.indexOf('\r\n\r\n') + 4);
    };
    // Around the buffer's size: the last that fits, the first that goes on the port, and far over it.
    for (const size of [0, 1, 4096, CHANNEL_BYTES - 8192, CHANNEL_BYTES + 1, 3 * CHANNEL_BYTES]) {
      const body = randomBytes(size);
      const outcome = await call('fn/echo:a', body);
      assert.ok(outcome.ok, outcome.ok ? '' : outcome.message);
      assert.equal(outcome.value.exitCode, 0);
      assert.ok(bodyOf(outcome.value.stdout).equals(body), `a ${size}-byte body came back changed`);
    }
    // Names and values JSON must carry as they are: a __proto__ variable, non-ASCII text, a quote.
    const hello = await pool.runWasi(compiled, {
      instanceKey: 'fn/echo:b', deadlineMs: 30_000, args: ['handler'], stdin: new Uint8Array(), dataDir: null, preopenAs: '/data',
      env: JSON.parse('{"REQUEST_METHOD":"GET","PATH_INFO":"/","QUERY_STRING":"ünï ✓ \\"q\\"","TENEMENT_INSTANCE":"__proto__","__proto__":"x"}') as Record<string, string>,
    });
    assert.ok(hello.ok, hello.ok ? '' : hello.message);
    assert.match(Buffer.from(hello.value.stdout).toString('utf8'), /Hello from C, __proto__! \(GET \/\?ünï ✓ "q"\)/);
    // Many at once from many tenants, small and large: each answer is its own request's.
    const bodies = Array.from({ length: 40 }, (_, i) => randomBytes(i % 4 === 0 ? CHANNEL_BYTES + 100 * i : 50 * i));
    const outcomes = await Promise.all(bodies.map((body, i) => call(`fn/echo:t${i % 8}`, body)));
    for (const [i, outcome] of outcomes.entries()) {
      assert.ok(outcome.ok, outcome.ok ? '' : outcome.message);
      assert.ok(bodyOf(outcome.value.stdout).equals(bodies[i]!), `call ${i} got another call's answer or a changed one`);
    }
  });
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

// A component's handler calls take the same buffer (JSON and the request and response bodies as bytes).
const jco = (() => {
  try {
    import.meta.resolve('@bytecodealliance/jco');
    return false;
  } catch {
    return 'needs @bytecodealliance/jco (npm install: it is a devDependency)';
  }
})();
for (const engine of ['v8', 'wasmtime'] as const) {
  const skip = jco || (engine === 'wasmtime' && !wasmtime.usable ? `needs the wasmtime library (npm run fetch:wasmtime): ${wasmtime.usable ? '' : wasmtime.reason}` : false);
  test(`handler calls of a component through the pool's channels answer each request with its own bytes (${engine})`, { skip, timeout: 300_000 }, async (t) => {
    const probe = path.join(dir, 'probe.wasm');
    await buildComponent({ source: path.join(FIXTURES, 'wasm-component', 'probe.ts'), out: probe });
    const loaded = await new ModuleCache(path.join(dir, `component-cache-${engine}`)).load(probe, 1024, engine);
    const artifact = (loaded as { artifact: ComponentArtifact }).artifact;
    const pool = new WasmPool({ threads: 2 });
    t.after(() => pool.close());
    const echo = (key: string, body: Uint8Array, query = '', headers: [string, string][] = []) =>
      pool.serveComponent(artifact, { instanceKey: key, deadlineMs: 30_000, fresh: false, dataDir: null, request: { method: 'POST', path: '/echo', query, headers, body } });
    await echo('probe:a', new Uint8Array(0)); // the instance made, and wasmtime's engine state sent once on the port
    for (const size of [0, 1, 4096, CHANNEL_BYTES - 8192, CHANNEL_BYTES + 1, 3 * CHANNEL_BYTES]) {
      const body = randomBytes(size);
      const before = { ...hopCounts };
      const outcome = await echo('probe:a', body);
      const fits = size < CHANNEL_BYTES - 4096;
      assert.deepEqual(
        [hopCounts.requestsInBuffer - before.requestsInBuffer, hopCounts.answersInBuffer - before.answersInBuffer],
        fits ? [1, 1] : [0, 0],
        `a ${size}-byte call and its answer ${fits ? 'in the buffer' : 'on the port'}`,
      );
      assert.ok(outcome.ok, outcome.ok ? '' : outcome.message);
      assert.equal(outcome.value.status, 201);
      assert.ok(Buffer.from(outcome.value.body).equals(body), `a ${size}-byte body came back changed`);
    }
    // What JSON must carry as it is: a __proto__ header, non-ASCII text, quotes and backslashes.
    const odd: [string, string][] = [['__proto__', 'x'], ['x-ü', 'ünï ✓ "q" \\ \u2028']];
    const seen = await echo('probe:b', new Uint8Array(0), 'q=ünï "✓"', odd);
    assert.ok(seen.ok, seen.ok ? '' : seen.message);
    assert.deepEqual(JSON.parse(seen.value.headers[0]![1]), { method: 'POST', path: '/echo', query: 'q=ünï "✓"', headers: odd });
    assert.deepEqual(seen.value.headers.slice(1), [['x-multi', 'a'], ['x-multi', 'b']]);
    // Many at once from many tenants, small and large: each answer is its own request's.
    const bodies = Array.from({ length: 40 }, (_, i) => randomBytes(i % 4 === 0 ? CHANNEL_BYTES + 100 * i : 50 * i));
    const outcomes = await Promise.all(bodies.map((body, i) => echo(`probe:t${i % 8}`, body)));
    for (const [i, outcome] of outcomes.entries()) {
      assert.ok(outcome.ok, outcome.ok ? '' : outcome.message);
      assert.ok(Buffer.from(outcome.value.body).equals(bodies[i]!), `call ${i} got another call's answer or a changed one`);
    }
  });
}
