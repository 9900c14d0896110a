// The lean calls on V8 (core/wasm/component/lean-glue.ts, lean-calls.ts): the handler world's `handle` and
// Tenement's hot host imports with the canonical ABI written out instead of jco's task machinery. The same probe
// component is instantiated twice, one instance on the lean path and one on jco's own, and every request of a
// hostile list must give both the same answer and the same log lines: UTF-8 of every width and lone surrogates
// both ways, empty strings, a body of every byte value, 300 headers, a body that makes the guest's memory grow
// while it is being written, the tenant's files (jco's imports, called from inside a lean call), a trap.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildComponent, handleHttp, instantiateComponent, prepareComponent, type ComponentArtifact, type ComponentInstance, type WasmHttpRequest } from '../../core/wasm/component/index.ts';
import { LEAN_FUNCTIONS } from '../../core/wasm/component/lean-glue.ts';
import { FIXTURES } from '../helpers.ts';
import { PROBE, encoder, host, jcoMissing, req, work, type Captured } from './wasm-component-fixture.ts';

after(() => rmSync(work, { recursive: true, force: true }));

/** What a call gave: its answer (or the error it threw), and the lines it logged. */
function outcome(instance: ComponentInstance, captured: Captured, request: WasmHttpRequest): unknown {
  const from = captured.lines.length;
  try {
    const { status, headers, body } = handleHttp(instance, request);
    return { status, headers, body: Buffer.from(body).toString('base64'), lines: captured.lines.slice(from) };
  } catch (error) {
    return { threw: (error as Error).message, lines: captured.lines.slice(from) };
  }
}

describe('lean calls on V8: the same answers as jco\'s own path', { skip: jcoMissing() }, () => {
  let artifact: ComponentArtifact;
  before(async () => {
    await buildComponent({ source: path.join(FIXTURES, 'wasm-component', 'probe.ts'), out: PROBE });
    artifact = await prepareComponent(PROBE, { cacheDir: path.join(work, 'lean-artifacts'), memoryPages: 2048 });
  });

  test('the pinned jco\'s glue opens the lean `handle` and every lean import', async () => {
    const glue = readFileSync(new URL(artifact.jsPath), 'utf8');
    for (const key of LEAN_FUNCTIONS) assert.ok(glue.includes(`__tenementLean(${JSON.stringify(key)},`), `${key} takes the lean call`);
    assert.ok(glue.includes('__tenementHandle: { call: '), 'handle takes the lean call');
    const instance = await instantiateComponent(artifact, host(null));
    assert.equal(instance.lean, true);
    assert.equal((await instantiateComponent(artifact, host(null), { lean: false })).lean, false);
  });

  test('hostile requests get the same answers and log lines on both paths', async () => {
    const dataDir = path.join(work, 'lean-data');
    mkdirSync(path.join(dataDir, 'lean'), { recursive: true });
    mkdirSync(path.join(dataDir, 'jco'), { recursive: true });
    const leanHost = host(path.join(dataDir, 'lean'));
    const jcoHost = host(path.join(dataDir, 'jco'));
    const lean = await instantiateComponent(artifact, leanHost);
    const jco = await instantiateComponent(artifact, jcoHost, { lean: false });
    assert.equal(lean.lean, true);

    const everyByte = Uint8Array.from({ length: 256 }, (_, i) => i);
    const manyHeaders: [string, string][] = Array.from({ length: 300 }, (_, i) => [`x-h${i}`, `v${i} \u00e9\u4e2d\ud83d\ude00`]);
    const requests: WasmHttpRequest[] = [
      req('GET', '/echo'),
      { method: '', path: '', query: '', headers: [], body: new Uint8Array(0) },
      { method: 'POST', path: '/echo', query: 'a=\ud800&b=\udfff&c=\u0000&d=\u00e9\u4e2d\ud83d\ude00', headers: [['x-\u00e9', '\ud83d'], ['', '']], body: everyByte },
      { method: 'G\u00c9T', path: '/\u00e9\u4e2d\ud83d\ude00', query: '\u00ff', headers: [], body: everyByte },
      { method: 'PUT', path: '/echo', query: '', headers: manyHeaders, body: encoder.encode('x'.repeat(70_000)) },
      // Past the memory the guest has: its realloc grows it while the request is being written.
      { method: 'POST', path: '/echo', query: '', headers: [['x-big', 'y'.repeat(10_000)]], body: new Uint8Array(24 * 1024 * 1024).fill(7) },
      req('POST', '/text?s=\u00e9\u4e2d\ud83d\ude00\ud800&n=64', '\u00e9\u4e2d\ud83d\ude00'),
      { ...req('POST', '/text?n=0'), body: Uint8Array.of(0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82, 0xf0, 0x9f) },
      req('POST', '/write?name=note', 'hello \u00e9'),
      req('GET', '/read?name=note'),
      req('GET', '/read?name=../escape'),
      req('GET', '/calls'),
      req('GET', '/big?mb=2'),
      req('GET', '/missing'),
    ];
    for (const request of requests) {
      const label = `${request.method} ${request.path.slice(0, 40)}?${request.query.slice(0, 40)}`;
      const fromLean = outcome(lean, leanHost, request);
      const fromJco = outcome(jco, jcoHost, request);
      assert.deepEqual(fromLean, fromJco, `${label}: ${JSON.stringify(fromLean).slice(0, 300)}`);
      assert.ok(!('threw' in (fromLean as object)), `${label}: ${JSON.stringify(fromLean).slice(0, 300)}`);
    }
    // The echo gave back what was sent, bytes and all (not merely the same wrong answer twice).
    const echoed = handleHttp(lean, requests[2]!);
    assert.deepEqual([...echoed.body], [...everyByte]);
    const seen = JSON.parse(echoed.headers[0]![1]) as { query: string; headers: [string, string][] };
    assert.equal(seen.query, 'a=\ufffd&b=\ufffd&c=\u0000&d=\u00e9\u4e2d\ud83d\ude00');
    assert.deepEqual(seen.headers, [['x-\u00e9', '\ufffd'], ['', '']]);
    assert.equal(readFileSync(path.join(dataDir, 'lean', 'note'), 'utf8'), 'hello \u00e9');

    // A trap: both throw, and both instances refuse the next call.
    const trapLean = outcome(lean, leanHost, req('GET', '/trap')) as { threw?: string };
    assert.deepEqual(trapLean, outcome(jco, jcoHost, req('GET', '/trap')));
    assert.ok(trapLean.threw);
    assert.ok(lean.poisoned && jco.poisoned);
  });

  test('a call into another component of the guest (its stubbed WASI) traps the same way on both paths', async () => {
    const leanHost = host(null);
    const jcoHost = host(null);
    const lean = await instantiateComponent(artifact, leanHost);
    const jco = await instantiateComponent(artifact, jcoHost, { lean: false });
    const fromLean = outcome(lean, leanHost, req('GET', '/lone')) as { threw?: string };
    assert.deepEqual(fromLean, outcome(jco, jcoHost, req('GET', '/lone')));
    assert.equal(fromLean.threw, 'wasm trap: wasm `unreachable` instruction executed');
  });
});
