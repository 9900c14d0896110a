// Moving a `limits.storage` instance between fleet nodes (plugins/fleet/move.ts, storage-data.ts): a real NATS
// server, 2 Tenement nodes with the storage plugin (real loop-mounted ext4 quota images), the smaller image on n2.
// `ten move`'s route carries what is inside the source's image into the target's (DATA_DIR stays a link to the
// target's mount, the data inside it, stale content there gone); data that would not fit the target's quota is a
// coded refusal before anything stops (the instance still serves on its node, its data untouched); drain likewise.
import assert from 'node:assert/strict';
import { existsSync, lstatSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import storage from '../../plugins/storage/index.ts';
import { fleetApp, startNode, tempFile, waitLive, type TestNode } from '../fleet-harness.ts';
import { apiCall, onPath, request, waitFor } from '../helpers.ts';
import { natsServerAvailable, startNatsCluster, type NatsCluster } from '../nats-cluster.ts';
import { removeScratchDataDir } from '../storage-scratch.ts';

function whyNot(): string | false {
  if (!natsServerAvailable()) return 'nats-server is not installed (apt-get install nats-server)';
  if (process.getuid?.() !== 0) return 'needs root (limits.storage loop-mounts ext4 images)';
  if (!existsSync('/dev/loop-control')) return 'needs loop devices (/dev/loop-control)';
  for (const tool of ['mkfs.ext4', 'resize2fs', 'e2fsck', 'losetup']) if (!onPath(tool)) return `needs ${tool} (apt-get install e2fsprogs util-linux)`;
  return false;
}

describe('fleet: moving a limits.storage instance with its data', { skip: whyNot(), timeout: 180_000 }, () => {
  let cluster: NatsCluster;
  const nodes: TestNode[] = [];
  const spawns = tempFile('tnm-fleet-storage-');
  const admin = (node: TestNode): string => readFileSync(path.join(node.dataDir, 'admin.token'), 'utf8').trim();
  const owner = (): TestNode => nodes.find((n) => n.id === nodes[0]!.fleet.state.placement('app', 'alice')?.node)!;
  const move = (via: TestNode, to: TestNode) => apiCall(via.kernel, 'POST', '/api/fleet/instances/app/alice/move', { authorization: `Bearer ${admin(via)}` }, { to: to.id });
  const get = (node: TestNode, target: string) => request(node.kernel, 'alice.app.localhost', target);

  before(async () => {
    cluster = await startNatsCluster({ size: 1 });
    for (const [id, limit] of [['s1', '40MiB'], ['s2', '16MiB']] as const) {
      const services: Record<string, ServiceInput> = { app: fleetApp(spawns.file, { limits: { storage: limit } } as Partial<ServiceInput>) };
      nodes.push(await startNode(id, cluster.urls, services, {}, {}, [storage]));
    }
    await waitLive(nodes, 2);
  });

  after(async () => {
    // Stopped first, then the mounts undone and the folders removed (a mount left would keep the folder).
    await Promise.allSettled(nodes.map((node) => node.kernel.close()));
    for (const node of nodes) removeScratchDataDir(node.dataDir);
    await cluster?.stop();
    spawns.remove();
  });

  test('the data goes into the target\'s image; data larger than the target\'s quota is refused before anything stops', async () => {
    const [s1, s2] = nodes as [TestNode, TestNode];
    assert.equal((await get(s1, '/write')).status, 200);
    // On the large node, whichever node placed it.
    if (owner() !== s1) {
      const back = await move(s1, s1);
      assert.equal(back.status, 200, back.body);
    }
    const instance = s1.kernel.instances.get('app', 'alice')!;
    await waitFor(async () => instance.state === 'running' || (await get(s1, '/health')).status === 200, 'running on s1', 30_000);
    assert.equal((await get(s1, '/read')).body, 'kept');
    const dataDir = path.join(s1.dataDir, 'instances', 'app', 'alice');
    assert.ok(lstatSync(dataDir).isSymbolicLink(), 'DATA_DIR links to the quota image on s1');

    // 20 MiB do not fit s2's 16 MiB image: refused, coded, before the instance stops.
    const filled = await get(s1, '/fill/20');
    assert.equal(filled.status, 200, filled.body);
    const pid = s1.kernel.instances.get('app', 'alice')!.handle?.pid;
    const refused = await move(s2, s2);
    assert.equal(refused.status, 507, refused.body);
    assert.match(refused.body, /TNM_ERR_FLEET_NO_ROOM/);
    assert.equal(owner(), s1, 'still placed on s1');
    assert.equal(s1.kernel.instances.get('app', 'alice')!.handle?.pid, pid, 'not stopped');
    assert.equal((await get(s1, '/read')).body, 'kept');

    // Within the quota: moved, and inside s2's image (DATA_DIR a link to its mount).
    assert.equal((await get(s1, '/fill/2')).status, 200);
    const moved = await move(s1, s2);
    assert.equal(moved.status, 200, moved.body);
    assert.equal((JSON.parse(moved.body) as { mode: string }).mode, 'cold');
    assert.equal(owner(), s2);
    const there = path.join(s2.dataDir, 'instances', 'app', 'alice');
    await waitFor(async () => (await get(s2, '/read')).body === 'kept', 'the data read on s2', 30_000);
    assert.ok(lstatSync(there).isSymbolicLink(), 'DATA_DIR links to the quota image on s2');
    assert.deepEqual(readdirSync(realpathSync(there)).filter((f) => f !== 'lost+found').sort(), ['big', 'marker'], 'the data is inside the image');
    // The quota holds there: 20 MiB do not fit (the app deletes its file then).
    assert.equal((await get(s2, '/fill/20')).status, 507);

    // Back to s1, whose image still holds the old copy (with 'big'): replaced by what s2 had, nothing stale left.
    const back = await move(s2, s1);
    assert.equal(back.status, 200, back.body);
    await waitFor(async () => (await get(s1, '/read')).body === 'kept', 'the data read on s1 again', 30_000);
    assert.deepEqual(readdirSync(realpathSync(dataDir)).filter((f) => f !== 'lost+found').sort(), ['marker'], 'the image holds the moved data only');

    // Drain carries it the same way: s1's data (now with 'big' again) into s2's image.
    assert.equal((await get(s1, '/fill/1')).status, 200);
    const drained = await apiCall(s1.kernel, 'POST', '/api/fleet/nodes/s1/drain', { authorization: `Bearer ${admin(s1)}` });
    assert.equal(drained.status, 200, drained.body);
    await waitFor(() => owner() === s2, 'drained to s2', 30_000);
    await waitFor(async () => (await get(s2, '/read')).body === 'kept', 'the data read on s2 after the drain', 30_000);
    assert.deepEqual(readdirSync(realpathSync(there)).filter((f) => f !== 'lost+found').sort(), ['big', 'marker']);
  });
});
