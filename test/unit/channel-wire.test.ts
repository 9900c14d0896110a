// What a pool worker's shared buffer carries (core/wasm/channel-wire.ts): a handler call's result goes as JSON and
// its body as bytes, and comes back the same; one JSON would change (a gauge set to NaN or an infinity) does not
// go in the buffer at all (the port's structured clone keeps it), nor does a plugin call's arbitrary value.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeResult, decodeTask, encodeResult, encodeTask } from '../../core/wasm/channel-wire.ts';
import type { ComponentHttpTask, WorkerResult } from '../../core/wasm/protocol.ts';

const bytes = new Uint8Array(64 * 1024);
const result = (value: number): WorkerResult => ({
  ok: true,
  value: { status: 200, headers: [['__proto__', 'ü "q"']], body: Uint8Array.of(0, 255, 10) },
  logs: [{ stream: 'stdout', line: 'a \ud800 line' }],
  metrics: [{ kind: 'set', name: 'g', labels: [['k', 'v']], value }],
  threadId: 1, live: 1, evicted: [], queueMs: 0.5, runMs: 1.25, instantiated: false,
});

test('a handler call\'s result round-trips through the buffer, its body as bytes', () => {
  const wire = encodeResult('http', result(-2.5), bytes);
  assert.ok(wire);
  assert.deepEqual(decodeResult(bytes, wire.json, wire.body), result(-2.5));
});

test('a result JSON would change, or a plugin call\'s, stays off the buffer', () => {
  for (const value of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) assert.equal(encodeResult('http', result(value), bytes), null, String(value));
  assert.equal(encodeResult('call', result(1), bytes), null);
  assert.equal(encodeResult('http', result(1), new Uint8Array(16)), null, 'does not fit');
});

test('a handler call round-trips through the buffer, its request body as bytes', () => {
  const task: ComponentHttpTask = {
    op: 'http', hash: 'h', instanceKey: 'svc:__proto__', generation: 3, submittedAt: 1.5, fresh: false, dataDir: '/d',
    request: { method: 'POST', path: '/ü', query: 'a="b"', headers: [['x', '\u2028']], body: Uint8Array.of(1, 2, 3) },
  };
  const wire = encodeTask(task, bytes);
  assert.ok(wire);
  assert.deepEqual(decodeTask(bytes, wire.json, wire.body, new Map()), task);
  assert.equal(encodeTask({ ...task, artifact: {} as never }, bytes), null, 'compiled code goes on the port');
});
