// The wasm side of tenant metrics without a component: the worker's checks on each host call, and the runtime's
// store (bounds, kinds, rendering that the tenant-metrics parser reads back).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_TEXT_PER_CALL, MAX_UPDATES_PER_CALL, guestMetricsImports } from '../../core/wasm/component/guest-metrics.ts';
import type { GuestMetricUpdate } from '../../core/wasm/types.ts';
import { DEFAULT_LIMITS, parseExposition } from '../../plugins/tenant-metrics/parse.ts';
import { GuestMetrics, MAX_GUEST_SERIES, MAX_GUEST_TEXT } from '../../runtimes/wasm/guest-metrics.ts';

test('each host call is checked: names, label names, reserved labels, sizes, deltas; a bound per request', () => {
  let updates: GuestMetricUpdate[] = [];
  const host = guestMetricsImports(() => updates);
  assert.deepEqual(host.add('orders_total', [['plan', 'pro']], 2), { tag: 'ok', val: undefined });
  const refused = [
    host.set('1bad', [], 1),
    host.set('ok', [['__proto__', 'x']], 1),
    host.set('ok', [['bad-name', 'x']], 1),
    host.set('ok', [['a', 'x'], ['a', 'y']], 1),
    host.set('ok', [['a', 'v'.repeat(1025)]], 1),
    host.set('ok', Array.from({ length: 31 }, (_, i): [string, string] => [`l${i}`, 'v']), 1),
    host.add('ok', [], -1),
    host.add('ok', [], Infinity),
    host.add('ok', [], NaN),
  ];
  for (const answer of refused) assert.equal(answer.tag, 'err', JSON.stringify(answer));
  assert.equal(updates.length, 1, 'refused calls record nothing');
  updates = [];
  for (let i = 0; i < MAX_UPDATES_PER_CALL; i++) assert.equal(host.set('g', [], i).tag, 'ok');
  assert.match(String(host.set('g', [], 1).val), /more than 10000 metric updates/);
});

test('the store sums counters, sets gauges, keeps a name to its first kind, bounds its series, renders what the parser reads', () => {
  const store = new GuestMetrics();
  store.apply([
    { kind: 'add', name: 'orders_total', labels: [['plan', 'pro']], value: 1 },
    { kind: 'add', name: 'orders_total', labels: [['plan', 'pro']], value: 2 },
    { kind: 'set', name: 'orders_total', labels: [['plan', 'pro']], value: 100 },
    { kind: 'set', name: 'cart', labels: [['text', 'a "b" \\ c\nd']], value: NaN },
  ]);
  assert.equal(store.refused, 1);
  const parsed = parseExposition(Buffer.from(store.render()));
  assert.deepEqual(
    parsed.families.map((f) => [f.name, f.type, f.samples.map((s) => [s.labels, s.value])]),
    [
      ['orders_total', 'counter', [[[['plan', 'pro']], 3]]],
      ['cart', 'gauge', [[[['text', 'a "b" \\ c\nd']], NaN]]],
    ],
  );
  const many = Array.from({ length: MAX_GUEST_SERIES + 5 }, (_, i): GuestMetricUpdate => ({ kind: 'set', name: 'g', labels: [['i', String(i)]], value: i }));
  const big = new GuestMetrics();
  big.apply(many);
  assert.equal(big.refused, 5);
  assert.equal(parseExposition(Buffer.from(big.render()), { ...DEFAULT_LIMITS, maxSeries: 50_000 }).series, MAX_GUEST_SERIES);
});


test('bytes are bounded too: per request in the worker, across series in the store', () => {
  const updates: GuestMetricUpdate[] = [];
  const host = guestMetricsImports(() => updates);
  const big = Array.from({ length: 29 }, (_, i): [string, string] => [`l${i}`, 'v'.repeat(1024)]);
  let accepted = 0;
  while (host.set('g', [...big, ['n', String(accepted)]], 1).tag === 'ok') accepted++;
  assert.ok(accepted > 0 && accepted * 29 * 1024 <= MAX_TEXT_PER_CALL, `accepted ${accepted}`);
  const store = new GuestMetrics();
  for (let round = 0; round < 200; round++) {
    store.apply(updates.map((u, i) => ({ ...u, labels: [...u.labels.slice(0, -1), ['n', `${round}-${i}`]] })));
  }
  assert.ok(store.refused > 0, 'past the text budget new series are refused');
  assert.ok(store.render().length <= MAX_GUEST_TEXT * 1.2, 'the rendering stays near the budget');
});
