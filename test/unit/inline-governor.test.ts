// The governor of wasmtime calls on the main thread (core/wasm/inline-governor.ts): an idle thread takes every
// call, a busy one shares it out per window and per instance; instances that reach for files or run long are
// benched, longer on each repeat; its maps stay bounded under a flood of names.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BENCH_MS, InlineGovernor, KEY_SHARE_OF_WINDOW, MAX_BENCH_MS, MAX_KEYS, SHARE_OF_WINDOW, WINDOW_MS } from '../../core/wasm/inline-governor.ts';

const sized = <T>(governor: InlineGovernor, field: string): Map<string, T> => (governor as unknown as Record<string, Map<string, T>>)[field]!;

/** Runs calls of 0.5 ms for `key` from `at` while the governor allows them; returns the ms they took. */
function fill(governor: InlineGovernor, key: string, at: number): number {
  let used = 0;
  for (let t = at; governor.allows(key, 'm', t); t += 0.01) {
    governor.ran(key, 'm', 0.5, false, t);
    used += 0.5;
  }
  return used;
}

test('one instance alone may use the whole inline share of each window; the rest of the thread stays free', () => {
  const governor = new InlineGovernor();
  assert.equal(fill(governor, 'alice', 0), SHARE_OF_WINDOW * WINDOW_MS, 'alone: all of the inline share, never more');
  assert.ok(governor.allows('alice', 'm', WINDOW_MS), 'the next window starts over');
});

test('instances running inline together get at most their share each, and all of them the window share', () => {
  const governor = new InlineGovernor();
  const at = 1;
  governor.allows('bob', 'm', 0);
  governor.ran('bob', 'm', 0.5, false, 0);
  const alice = fill(governor, 'alice', 0);
  assert.equal(alice, KEY_SHARE_OF_WINDOW * WINDOW_MS, 'one instance stops at its share');
  let total = alice + 0.5;
  for (let i = 0; governor.allows(`tenant-${i}`, 'm', at); i++) {
    governor.ran(`tenant-${i}`, 'm', 0.5, false, at);
    total += 0.5;
  }
  assert.equal(total, SHARE_OF_WINDOW * WINDOW_MS, 'all together stop at the window share');
  // In the next window alice is alone, but bob ran in the last one: she still gets only her share.
  assert.equal(fill(governor, 'alice', WINDOW_MS), KEY_SHARE_OF_WINDOW * WINDOW_MS);
});

test('an instance that reached for a file is benched, longer on each repeat, and forgiven much later', () => {
  const governor = new InlineGovernor();
  governor.ran('files', 'm', 0.3, true, 0);
  assert.equal(governor.allows('files', 'm', BENCH_MS - 1), false);
  assert.equal(governor.allows('other', 'm', BENCH_MS - 1), true, 'only that instance');
  assert.equal(governor.allows('files', 'm', BENCH_MS), true);
  governor.ran('files', 'm', 0.3, true, BENCH_MS);
  assert.equal(governor.allows('files', 'm', BENCH_MS + 2 * BENCH_MS - 1), false, 'doubled');
  let at = BENCH_MS;
  let lasted = 2 * BENCH_MS;
  for (let i = 0; i < 10; i++) {
    at += lasted;
    governor.ran('files', 'm', 0.3, true, at);
    lasted = Math.min(MAX_BENCH_MS, lasted * 2);
  }
  assert.equal(governor.allows('files', 'm', at + MAX_BENCH_MS - 1), false);
  assert.equal(governor.allows('files', 'm', at + MAX_BENCH_MS), true, 'never longer than the cap');
  // Long after the last benching ended, a new one starts from the beginning.
  const later = at + 10 * MAX_BENCH_MS;
  governor.ran('files', 'm', 0.3, true, later);
  assert.equal(governor.allows('files', 'm', later + BENCH_MS), true);
});

test('calls that run long on average bench their instance; one slow call does not', () => {
  const governor = new InlineGovernor();
  governor.ran('steady', 'm', 0.2, false, 0);
  governor.ran('steady', 'm', 3, false, 1);
  assert.ok(governor.allows('steady', 'm', 2), 'one call slowed by a busy host');
  let calls = 0;
  for (let at = 10; governor.allows('runaway', 'm', at); at++) {
    governor.ran('runaway', 'm', 3, false, at);
    calls++;
  }
  assert.ok(calls <= 4, `a guest stopped at the budget every time is benched within a few calls (took ${calls})`);
});

test('a module whose calls run long is benched for every tenant: fresh tenants get no fresh tries', () => {
  const governor = new InlineGovernor();
  let tries = 0;
  for (let i = 0; governor.allows(`tenant-${i}`, 'hostile', i); i++) {
    governor.ran(`tenant-${i}`, 'hostile', 3, false, i);
    tries++;
  }
  assert.ok(tries <= 4, `benched after ${tries} calls across as many tenants`);
  assert.ok(governor.allows('tenant-x', 'other-module', 10), 'another module is not');
  // Reaching for files benches the instance, never the module.
  const files = new InlineGovernor();
  files.ran('a', 'shared', 0.2, true, 0);
  assert.equal(files.allows('a', 'shared', 1), false);
  assert.equal(files.allows('b', 'shared', 1), true);
});

test('a flood of instance names keeps every map bounded, and __proto__ is just a name', () => {
  const governor = new InlineGovernor();
  for (let i = 0; i < MAX_KEYS * 3; i++) {
    const key = `flood-${i}`;
    if (governor.allows(key, 'm', i * 1e-6)) governor.ran(key, 'm', 1e-6, i % 2 === 0, i * 1e-6);
  }
  for (const field of ['usedBy', 'benched', 'average']) assert.ok(sized(governor, field).size <= MAX_KEYS, `${field} bounded`);
  const fresh = new InlineGovernor();
  for (const key of ['__proto__', 'constructor', 'toString']) {
    assert.ok(fresh.allows(key, 'm', 0));
    fresh.ran(key, 'm', 0.1, true, 0);
    assert.equal(fresh.allows(key, 'm', 1), false);
  }
  assert.equal(fresh.benchedCount(1), 3);
});
