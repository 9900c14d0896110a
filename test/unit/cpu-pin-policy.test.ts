// The pinning's decision over samples (core/dataplane/cpu-pin.ts PinPolicy): when to pin, when to let go, and
// the hold-off after a crowded CPU. Inputs a broken reading could give (NaN, infinities, negatives) decide nothing.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_PIN, PinPolicy, type PinThresholds } from '../../core/dataplane/cpu-pin.ts';

const T: PinThresholds = { busy: 0.5, pinAfter: 2, quiet: 0.2, unpinAfter: 3, crowded: 0.25, crowdedAfter: 2, holdOff: 4 };

test('pins after pinAfter busy samples in a row, not before', () => {
  const policy = new PinPolicy(T);
  assert.equal(policy.sample(0.9, 0, false), null);
  assert.equal(policy.sample(0.3, 0, false), null, 'a sample between quiet and busy breaks the run');
  assert.equal(policy.sample(0.9, 0, false), null);
  assert.equal(policy.sample(0.5, 0, false), 'pin', 'busy is inclusive');
});

test('lets go after unpinAfter quiet samples in a row; a busy one starts the count again', () => {
  const policy = new PinPolicy(T);
  assert.equal(policy.sample(0.1, 0, true), null);
  assert.equal(policy.sample(0.1, 0, true), null);
  assert.equal(policy.sample(0.6, 0, true), null);
  assert.equal(policy.sample(0.1, 0, true), null);
  assert.equal(policy.sample(0.1, 0, true), null);
  assert.equal(policy.sample(0.1, 0, true), 'unpin');
});

test('a crowded CPU is let go, and the loop is not pinned again during the hold-off', () => {
  const policy = new PinPolicy(T);
  assert.equal(policy.sample(0.9, 0.3, true), null);
  assert.equal(policy.sample(0.9, 0.3, true), 'crowded');
  // Busy all along: held off for holdOff samples, then pinned again after pinAfter busy ones.
  const decisions = Array.from({ length: 4 }, () => policy.sample(0.9, 0, false));
  assert.deepEqual(decisions, [null, null, null, 'pin'], 'pinned again on the first sample after the hold-off');
});

test('waiting counts only while pinned', () => {
  const policy = new PinPolicy(T);
  assert.equal(policy.sample(0.1, 0.9, false), null);
  assert.equal(policy.sample(0.1, 0.9, false), null);
  assert.equal(policy.sample(0.9, 0.9, false), null);
  assert.equal(policy.sample(0.9, 0.9, false), 'pin', 'waiting before a pin does not hold it off');
});

test('broken readings decide nothing', () => {
  const policy = new PinPolicy(T);
  for (const elu of [Number.NaN, Number.NEGATIVE_INFINITY, -1]) assert.equal(policy.sample(elu, Number.NaN, false), null);
  for (let i = 0; i < 5; i++) assert.equal(policy.sample(0.9, Number.NaN, true), null, 'NaN waiting is not crowded');
  // Infinity utilization counts as 0 (not busy); a pinned, quiet loop is let go as usual.
  const quiet = new PinPolicy(T);
  assert.equal(quiet.sample(Number.POSITIVE_INFINITY, 0, true), null);
  assert.equal(quiet.sample(Number.POSITIVE_INFINITY, 0, true), null);
  assert.equal(quiet.sample(Number.POSITIVE_INFINITY, 0, true), 'unpin');
});

test('the defaults pin within one sample of load and hold through short pauses', () => {
  assert.equal(DEFAULT_PIN.pinAfter, 1);
  const policy = new PinPolicy();
  assert.equal(policy.sample(0.8, 0, false), 'pin');
  for (let i = 0; i < DEFAULT_PIN.unpinAfter - 1; i++) assert.equal(policy.sample(0, 0, true), null);
  assert.equal(policy.sample(0, 0, true), 'unpin');
});

test('each crowded pin in a row doubles the hold-off (up to 64 times); a pin that ends quietly resets it', () => {
  const policy = new PinPolicy(T);
  const heldFor = (): number => {
    // Pinned and crowded until let go, then busy until pinned again: the samples in between.
    while (policy.sample(0.9, 0.5, true) !== 'crowded');
    let samples = 0;
    while (policy.sample(0.9, 0, false) !== 'pin') samples++;
    return samples;
  };
  const held = Array.from({ length: 9 }, heldFor);
  assert.deepEqual(held, [4, 8, 16, 32, 64, 128, 256, 256, 256].map((n) => n - 1));
  // Let go quietly once: the next crowded pin is held off for the base again.
  for (let i = 0; i < T.unpinAfter - 1; i++) policy.sample(0.1, 0, true);
  assert.equal(policy.sample(0.1, 0, true), 'unpin');
  assert.equal(policy.sample(0.9, 0, false), null);
  assert.equal(policy.sample(0.9, 0, false), 'pin');
  assert.equal(heldFor(), T.holdOff - 1);
});
