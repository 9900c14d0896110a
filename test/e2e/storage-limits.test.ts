// Storage limits end to end (plugins/storage), the limit itself: real loop-mounted ext4 images under real
// instances, ENOSPC at the limit on the process, namespace and sandbox tiers while a neighbour keeps writing, usage
// in the API and metrics, and the warning event.
import assert from 'node:assert/strict';
import { realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import type { InstanceEvent } from '../../core/types.ts';
import namespaceRuntime from '../../runtimes/namespace/index.ts';
import sandboxRuntime from '../../runtimes/sandbox/index.ts';
import { mountsUnder } from '../storage-scratch.ts';
import { onPath, recordEvents, request, sleep, waitFor } from '../helpers.ts';
import { probeService } from '../probe.ts';
import { MIB, fill, plugins, scratchDataDir, storageFacts, storageKernel, storageSkipReason, type FillResult } from './storage-fixture.ts';

const skip = storageSkipReason();
const skipNamespace = skip || (onPath('bwrap') ? false : 'needs bwrap (apt-get install bubblewrap)');
const skipSandbox = skip || (onPath('runsc') ? false : 'needs runsc (apt-get install runsc)');

const warningsOf = (events: InstanceEvent[], key: string): InstanceEvent[] => events.filter((e) => e.type === 'storage-warning' && e.instance === key);

describe('storage limits', { skip, timeout: 120_000 }, () => {
  test('a storage bomb gets ENOSPC at its limit while a neighbour keeps writing; usage in the API and metrics; one warning per crossing', async (t) => {
    const dataDir = scratchDataDir();
    const kernel = await storageKernel(t, dataDir, {
      services: { probe: probeService({ limits: { storage: '24MiB', storageWarn: 0.8 } }) },
    });
    const events = recordEvents(kernel);
    await kernel.spawnInstance('probe', 'bomb');
    await kernel.spawnInstance('probe', 'calm');

    const mounts = mountsUnder(dataDir);
    assert.equal(mounts.size, 2, `one mount per instance: ${[...mounts.keys()].join(', ')}`);
    for (const device of mounts.values()) assert.match(device, /^\/dev\/loop\d+$/);

    const bomb = await fill(kernel, 'probe', 'bomb', 'big', 100);
    assert.equal(bomb.status, 507);
    assert.equal(bomb.result.code, 'ENOSPC');
    assert.ok(bomb.result.written > 15 * MIB && bomb.result.written <= 24 * MIB, `stopped at ${bomb.result.written} bytes`);

    // The neighbour is not affected: it writes its 4 MiB as if nothing happened.
    const calm = await fill(kernel, 'probe', 'calm', 'small', 4);
    assert.equal(calm.status, 200, JSON.stringify(calm.result));
    assert.equal(calm.result.written, 4 * MIB);
    // And the host's disk only paid for what the bomb could write.
    const image = path.join(realpathSync(dataDir), '.storage', 'images', 'probe', 'bomb.img');
    assert.ok(statSync(image).blocks * 512 <= 25 * MIB, 'the image never takes more than its size on the host');

    const full = await storageFacts(kernel, 'probe', 'bomb');
    assert.equal(full.imageBytes, 24 * MIB);
    assert.ok(full.limitBytes > 18 * MIB && full.limitBytes < 24 * MIB, `capacity ${full.limitBytes}`);
    assert.ok(full.usedBytes >= full.limitBytes * 0.95, `the bomb filled its capacity: ${JSON.stringify(full)}`);
    const neighbour = await storageFacts(kernel, 'probe', 'calm');
    assert.ok(neighbour.usedBytes >= 4 * MIB && neighbour.usedBytes < 8 * MIB, JSON.stringify(neighbour));

    const gauge = kernel.metricsRegistry.getSingleMetric('tenement_instance_storage_bytes');
    assert.ok(gauge, 'the storage gauge is registered');
    const samples = (await gauge.get()).values;
    const sample = (instance: string, kind: string) => samples.find((s) => s.labels.instance === instance && s.labels.kind === kind)?.value;
    assert.equal(sample('probe:bomb', 'limit'), full.limitBytes);
    assert.ok((sample('probe:bomb', 'used') ?? 0) >= full.limitBytes * 0.95);
    assert.ok((sample('probe:calm', 'used') ?? 0) >= 4 * MIB);

    // Above 80%: one event, however many polls (every 50 ms) see it there.
    await waitFor(() => warningsOf(events, 'probe:bomb').length > 0, 'the storage warning of probe:bomb', 5_000);
    await sleep(400);
    assert.equal(warningsOf(events, 'probe:bomb').length, 1, 'one warning per crossing');
    assert.match(warningsOf(events, 'probe:bomb')[0]!.reason ?? '', /at or above its warning threshold of 80%/);
    assert.equal(warningsOf(events, 'probe:calm').length, 0);

    // Back below the threshold re-arms it: the next crossing warns again.
    const removed = await request(kernel, 'bomb.probe.localhost', `/remove?path=${encodeURIComponent(path.join(kernel.instanceDir('probe', 'bomb'), 'big'))}`);
    assert.equal(removed.status, 200, removed.body);
    await sleep(300);
    assert.equal(warningsOf(events, 'probe:bomb').length, 1);
    assert.equal((await fill(kernel, 'probe', 'bomb', 'again', 100)).result.code, 'ENOSPC');
    await waitFor(() => warningsOf(events, 'probe:bomb').length === 2, 'a second warning after re-arming', 5_000);
  });

  test('namespace tier: the tenant uid owns its mounted DATA_DIR, writes into it and stops at the limit', { skip: skipNamespace }, async (t) => {
    const dataDir = scratchDataDir();
    const kernel = await storageKernel(
      t,
      dataDir,
      { services: { probe: probeService({ isolation: 'namespace', limits: { storage: '16MiB' } }) } },
      [...plugins, namespaceRuntime],
    );
    await kernel.spawnInstance('probe', 'ns');
    const probe = JSON.parse((await request(kernel, 'ns.probe.localhost', '/probe')).body) as { uid: number; writable: { dataDir: { ok: boolean } } };
    assert.notEqual(probe.uid, 0, 'the tenant is not root');
    assert.equal(probe.writable.dataDir.ok, true, 'the tenant can write into its mounted DATA_DIR');
    const mountPoint = [...mountsUnder(dataDir).keys()][0]!;
    assert.equal(statSync(mountPoint).uid, probe.uid, 'the root of the image belongs to the tenant uid');
    const bomb = await fill(kernel, 'probe', 'ns', 'big', 100);
    assert.equal(bomb.result.code, 'ENOSPC', JSON.stringify(bomb.result));
  });

  test('sandbox tier (gVisor): the mounted DATA_DIR is bound into the sandbox and stops the tenant at the limit', { skip: skipSandbox }, async (t) => {
    const dataDir = scratchDataDir();
    const kernel = await storageKernel(
      t,
      dataDir,
      { services: { probe: probeService({ isolation: 'sandbox', limits: { storage: '16MiB' } }) } },
      [...plugins, sandboxRuntime],
    );
    await kernel.spawnInstance('probe', 'sb');
    const probe = JSON.parse((await request(kernel, 'sb.probe.localhost', '/probe')).body) as {
      writable: { dataDir: { ok: boolean } };
      env: Record<string, string>;
    };
    assert.equal(probe.writable.dataDir.ok, true, 'the tenant can write into its mounted DATA_DIR');
    // runsc cannot follow DATA_DIR's link: the sandbox gets the mount point itself as DATA_DIR.
    const mountPoint = [...mountsUnder(dataDir).keys()][0]!;
    assert.equal(probe.env.DATA_DIR, mountPoint);
    const target = encodeURIComponent(path.join(mountPoint, 'big'));
    const bomb = { result: JSON.parse((await request(kernel, 'sb.probe.localhost', `/fill?path=${target}&mb=100`)).body) as FillResult };
    assert.equal(bomb.result.code, 'ENOSPC', JSON.stringify(bomb.result));
    assert.ok((await storageFacts(kernel, 'probe', 'sb')).usedBytes > 10 * MIB, 'what the sandbox wrote is in the image');
  });
});
