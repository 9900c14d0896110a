// The spill policy of the proxy workers (core/dataplane/workers/spill.ts, settings.proxy.accept 'spill'): one more
// worker accepts only after the accepting processes were saturated while the host had an idle core, for as many
// samples in a row as asked; the last to spill parks after a run of quiet samples. Pure: samples in, decisions out.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULT_SPILL, SpillPolicy, eluMeter, idleCoresMeter } from '../../core/dataplane/workers/spill.ts';

const run = (policy: SpillPolicy, samples: Array<[number[], number]>, parked = 1, accepting = 0): Array<string | null> =>
  samples.map(([elus, idle]) => policy.sample(elus, idle, parked, accepting));

test('saturated with an idle core spills after spillAfter samples in a row, not before', () => {
  const policy = new SpillPolicy();
  assert.equal(DEFAULT_SPILL.spillAfter, 2);
  assert.deepEqual(run(policy, [[[0.95], 1.2], [[0.95], 1.2]]), [null, 'spill']);
  // The run starts over after a decision.
  assert.deepEqual(run(policy, [[[0.95], 1.2], [[0.95], 1.2]]), [null, 'spill']);
});

test('saturated on a host with no idle core never spills (the second process would compete, not add)', () => {
  const policy = new SpillPolicy();
  const busyHost = Array.from({ length: 50 }, (): [number[], number] => [[1, 0.99], 0.2]);
  assert.ok(run(policy, busyHost, 1, 1).every((decision) => decision === null));
  // Half a core idle is not a core to spare (measured: a second process then cut throughput by a third).
  const halfIdle = Array.from({ length: 50 }, (): [number[], number] => [[1], 0.6]);
  assert.ok(run(policy, halfIdle, 1, 0).every((decision) => decision === null));
});

test('a sample that is not saturated, or without an idle core, starts the run over', () => {
  const policy = new SpillPolicy();
  assert.deepEqual(run(policy, [[[0.95], 1], [[0.5], 1], [[0.95], 1], [[0.95], 0.1], [[0.95], 1], [[0.95], 1]]), [null, null, null, null, null, 'spill']);
});

test('the mean over the accepting processes decides, and nothing spills with no worker parked', () => {
  const policy = new SpillPolicy();
  assert.deepEqual(run(policy, [[[1, 0.5], 2], [[1, 0.5], 2]]), [null, null]);
  assert.deepEqual(run(policy, [[[1, 0.9], 2], [[1, 0.9], 2]], 0, 1), [null, null]);
});

test('quiet accepting processes park the last worker after parkAfter samples; none to park, nothing', () => {
  const policy = new SpillPolicy();
  const quiet = Array.from({ length: DEFAULT_SPILL.parkAfter }, (): [number[], number] => [[0.1, 0.05], 1.5]);
  const decisions = run(policy, quiet, 0, 1);
  assert.deepEqual(decisions.slice(0, -1), Array(DEFAULT_SPILL.parkAfter - 1).fill(null));
  assert.equal(decisions.at(-1), 'park');
  assert.ok(run(new SpillPolicy(), [...quiet, ...quiet], 1, 0).every((decision) => decision === null));
});

test('hostile or broken samples (NaN, negative, above 1, none) never spill', () => {
  const policy = new SpillPolicy();
  const bad: Array<[number[], number]> = [[[Number.NaN], 2], [[Number.NaN], 2], [[-5], 2], [[], 2], [[], 2], [[Number.POSITIVE_INFINITY], Number.NaN], [[0.9], Number.NaN]];
  assert.ok(run(policy, bad).every((decision) => decision !== 'spill'));
  // Above 1 is clamped to 1: saturated.
  assert.deepEqual(run(new SpillPolicy(), [[[7], 1], [[7], 1]]), [null, 'spill']);
});

test('the meters read this process and this host', async () => {
  const elu = eluMeter();
  const idle = idleCoresMeter();
  // Busy inside a loop turn, read after the next one (Node 24 counts a turn's activity once the turn is over).
  await new Promise<void>((resolve) =>
    setTimeout(() => {
      const end = Date.now() + 30;
      while (Date.now() < end);
      resolve();
    }, 1),
  );
  await new Promise<void>((resolve) => setImmediate(resolve));
  const busy = elu();
  assert.ok(busy > 0 && busy <= 1, `elu ${busy}`);
  const cores = idle();
  assert.ok(Number.isFinite(cores) && cores >= 0, `idle ${cores}`);
});
