// Runtimes declare what their tier does with cgroups and DATA_DIR's link; other plugins read it instead of
// naming tiers.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import { DEFAULT_TIER_TRAITS } from '../../core/tier-traits.ts';
import { definePlugin } from '../../sdk/index.ts';
import processRuntime from '../../runtimes/process/index.ts';
import sandboxRuntime from '../../runtimes/sandbox/index.ts';

const declaring = (name: string, traits: { cgroups: 'limits' | 'none' }) =>
  definePlugin({ name, version: '1.0.0', kernel: '^1', setup: (ctx) => ctx.tiers.declare('process', traits) });

test('tier traits: what the runtimes declare, and the safe defaults for a tier nobody declared', async (t) => {
  const kernel = await createTestKernel({ plugins: [processRuntime, [sandboxRuntime, { runsc: '/nonexistent/runsc' }]], config: { services: {} } });
  t.after(() => kernel.close());
  assert.deepEqual(kernel.tierTraits('process'), { cgroups: 'limits', enforcesStorageLimit: false, followsDataDirLink: true, tenantUid: true, probesPort: true });
  assert.deepEqual(kernel.tierTraits('sandbox'), { cgroups: 'limits', enforcesStorageLimit: false, followsDataDirLink: false, tenantUid: true, probesPort: true });
  // No runtime of this tier is loaded: nothing is assumed of it.
  assert.deepEqual(kernel.tierTraits('microvm'), DEFAULT_TIER_TRAITS);
  assert.equal(DEFAULT_TIER_TRAITS.cgroups, 'none');
});

test('tier traits: a second runtime may repeat a declaration, not contradict it', async () => {
  const same = await createTestKernel({ plugins: [processRuntime, declaring('again', { cgroups: 'limits' })], config: { services: {} } });
  await same.close();
  await assert.rejects(
    createTestKernel({ plugins: [processRuntime, declaring('other', { cgroups: 'none' })], config: { services: {} } }),
    /tier 'process' was declared twice with different traits/,
  );
});
