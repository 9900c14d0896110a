import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTestKernel } from '../../core/test-kernel.ts';
import { errorMessage } from '../../core/errors.ts';
import type { PluginContext } from '../../core/plugin-context.ts';
import { definePlugin } from '../../sdk/index.ts';
import processRuntime from '../../runtimes/process/index.ts';

const describer = (name: string, facts: Record<string, unknown>, onSetup?: (ctx: PluginContext) => void) =>
  definePlugin({
    name,
    version: '1.0.0',
    kernel: '^1',
    setup(ctx) {
      onSetup?.(ctx);
      ctx.hooks.describe.tap((_instance, own) => {
        // Each plugin sees only its own object: nothing another plugin set is readable (or overwritable) here.
        assert.deepEqual(Object.keys(own), []);
        Object.assign(own, facts);
      });
    },
  });

test('describe: each plugin writes its own facts; a key two plugins set is refused, naming both, and never overwritten', async () => {
  let ctx: PluginContext | undefined;
  const kernel = await createTestKernel({
    plugins: [
      processRuntime,
      describer('first', { oomKills: 1, a: 1 }, (c) => (ctx = c)),
      describer('second', { oomKills: 2, b: 2 }),
      describer('third', { c: 3 }),
    ],
    config: { services: { app: { command: 'x' } } },
  });
  try {
    const recorded: Array<{ where: string; message: string }> = [];
    const record = kernel.faults.record.bind(kernel.faults);
    kernel.faults.record = (where, error, context) => {
      recorded.push({ where, message: errorMessage(error) });
      record(where, error, context);
    };
    const view = kernel.createInstance('app', 'one');
    for (let call = 1; call <= 2; call += 1) {
      // A fresh facts object per call: who set what is tracked per call, so the clash is found every time.
      assert.deepEqual(await ctx!.instances.describe(view), { oomKills: 1, a: 1, c: 3 }, `call ${call}`);
      assert.equal(kernel.faults.counts().get('describe'), call);
    }
    assert.equal(recorded.length, 2);
    for (const { where, message } of recorded) {
      assert.equal(where, 'describe');
      assert.match(message, /plugins 'first' and 'second' both describe facts\.oomKills of app:one/);
    }
  } finally {
    await kernel.close();
  }
});
