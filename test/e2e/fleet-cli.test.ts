// `ten fleet nodes|cordon|uncordon|drain` and `ten ps --fleet` (cli/commands/fleet.ts) against a real fleet:
// a 3-server NATS cluster and 2 Tenement kernels, `ten` run as a user runs it.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { startApiNodes } from '../fleet-api-node.ts';
import { closeNode, fleetApp, tempFile, waitLive, type TestNode } from '../fleet-harness.ts';
import { apiCall, request, waitFor } from '../helpers.ts';
import { natsServerAvailable, startNatsCluster, type NatsCluster } from '../nats-cluster.ts';
import { ten } from '../ten-cli.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import { servePlugins } from '../helpers.ts';

const skip = natsServerAvailable() ? false : 'nats-server is not installed (apt-get install nats-server)';

describe('the fleet CLI', { skip, timeout: 300_000 }, () => {
  let cluster: NatsCluster;
  const nodes: TestNode[] = [];
  const spawns = tempFile('tnm-fleet-cli-');
  const cwd = mkdtempSync(path.join(os.tmpdir(), 'tnm-fleet-cli-cwd-'));
  const admin = (node: TestNode): string => readFileSync(path.join(node.dataDir, 'admin.token'), 'utf8').trim();
  const via = (node: TestNode, token = admin(node)): string[] => ['--server', node.kernel.url, '--token', token];

  before(async () => {
    cluster = await startNatsCluster({ size: 3 });
    await startApiNodes(['c1', 'c2'], cluster.urls, { app: fleetApp(spawns.file) }, nodes);
    await waitLive(nodes, 2);
    // Each node's admin token must work on the other (fleet-wide tokens) before ps --fleet asks both.
    for (const a of nodes) for (const b of nodes) await waitFor(async () => (await apiCall(b.kernel, 'GET', '/api/tokens', { authorization: `Bearer ${admin(a)}` })).status === 200, 'tokens replicated', 15_000);
  });

  after(async () => {
    await Promise.allSettled(nodes.map((node) => closeNode(node)));
    await cluster?.stop();
    spawns.remove();
    rmSync(cwd, { recursive: true, force: true });
  });

  test('ten fleet nodes lists every node with its state, as a table and as JSON', async () => {
    const [c1] = nodes as [TestNode];
    const json = await ten(['fleet', 'nodes', '--json', ...via(c1)], cwd);
    assert.equal(json.code, 0, json.stderr);
    const answer = JSON.parse(json.stdout) as { self: string; nodes: Array<{ id: string; live: boolean; state: string; advertise: string }> };
    assert.equal(answer.self, 'c1');
    assert.deepEqual(answer.nodes.map((n) => n.id).sort(), ['c1', 'c2']);
    assert.ok(answer.nodes.every((n) => n.live && n.state === 'active' && n.advertise.startsWith('http://127.0.0.1:')));
    const human = await ten(['fleet', 'nodes', ...via(c1)], cwd);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^NODE\s+STATE\s+ADVERTISE\s+PLACED\s+RUNNING\s+CAPACITY\s+LABELS\s+HEARTBEAT/m);
    assert.match(human.stdout, /^c1 \*\s+active/m);
    assert.match(human.stdout, /^c2\s+active/m);
    assert.match(human.stdout, /2 nodes \(2 live\)/);
  });

  test('cordon, uncordon and drain go through any node; bad names and unknown nodes are refused', async () => {
    const [c1, c2] = nodes as [TestNode, TestNode];
    const cordon = await ten(['fleet', 'cordon', 'c2', ...via(c1)], cwd);
    assert.equal(cordon.code, 0, cordon.stderr);
    assert.match(cordon.stdout, /c2 cordoned/);
    await waitFor(() => c1.fleet.state.node('c2')?.state === 'cordoned', 'c2 cordoned as c1 sees it', 15_000);
    // New instances go to c1 only while c2 is cordoned.
    for (const id of ['p1', 'p2', 'p3']) assert.equal((await request(c2.kernel, `${id}.app.localhost`, '/')).status, 200);
    for (const id of ['p1', 'p2', 'p3']) assert.equal(c1.fleet.state.placement('app', id)?.node, 'c1');
    const uncordon = await ten(['fleet', 'uncordon', 'c2', '--json', ...via(c2)], cwd);
    assert.equal(uncordon.code, 0, uncordon.stderr);
    assert.deepEqual(JSON.parse(uncordon.stdout), { node: 'c2', state: 'active' });
    await waitFor(() => c1.fleet.state.node('c2')?.state === 'active', 'c2 active again', 15_000);

    const unknown = await ten(['fleet', 'drain', 'nobody', ...via(c1)], cwd);
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /TNM_ERR_NOT_FOUND/);
    for (const bad of ['../c1', 'c1/drain', '__proto__?x', '-x']) {
      const refused = await ten(['fleet', 'cordon', '--', bad, ...via(c1)], cwd);
      assert.notEqual(refused.code, 0, bad);
    }
    assert.equal(c1.fleet.state.node('c1')?.state, 'active');

    // Drain c1 with --wait: done when no placement names it.
    const drained = await ten(['fleet', 'drain', 'c1', '--wait', '--timeout', '60s', ...via(c2)], cwd);
    assert.equal(drained.code, 0, drained.stderr);
    assert.match(drained.stdout, /c1 drained/);
    assert.ok([...c2.fleet.state.placements()].every((p) => p.node !== 'c1'));
    assert.equal((await ten(['fleet', 'uncordon', 'c1', ...via(c2)], cwd)).code, 0);
    await waitFor(() => c2.fleet.state.node('c1')?.state === 'active', 'c1 active again', 15_000);
  });

  test('a server outside a fleet says so', async (t) => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tnm-nofleet-'));
    const kernel = await createTestKernel({ plugins: [...servePlugins, authBearer], config: { settings: { dataDir }, services: {} } });
    t.after(() => kernel.close().finally(() => rmSync(dataDir, { recursive: true, force: true })));
    const token = readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();
    for (const args of [['fleet', 'nodes'], ['fleet', 'drain', 'n1'], ['ps', '--fleet']]) {
      const result = await ten([...args, '--server', kernel.url, '--token', token], cwd);
      assert.equal(result.code, 1, args.join(' '));
      assert.match(result.stderr, /not in a fleet/, args.join(' '));
    }
  });

  test('ten ps --fleet shows each instance with its node, as its owner reports it; a tenant token sees only its own', async () => {
    const [c1, c2] = nodes as [TestNode, TestNode];
    for (const id of ['alice', 'bob']) assert.equal((await request(c1.kernel, `${id}.app.localhost`, '/')).status, 200);
    const json = await ten(['ps', '--fleet', '--json', ...via(c1)], cwd);
    assert.equal(json.code, 0, json.stderr);
    const answer = JSON.parse(json.stdout) as { instances: Array<{ node: string; key: string; instance: { state: string; pid: number | null } | null }>; unreachable: string[] };
    assert.deepEqual(answer.unreachable, []);
    for (const key of ['app:alice', 'app:bob']) {
      const row = answer.instances.find((r) => r.key === key);
      assert.ok(row, `${key} listed: ${json.stdout}`);
      const owner = c1.fleet.state.placement('app', key.slice(4))!.node;
      assert.equal(row.node, owner);
      assert.equal(row.instance?.state, 'running');
      // The owner's own view: a real process (a stand-in on another node has no pid).
      assert.equal(typeof row.instance?.pid, 'number');
    }
    const human = await ten(['ps', '--fleet', ...via(c2)], cwd);
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /^NODE\s+INSTANCE\s+STATE\s+HEALTH/m);
    assert.match(human.stdout, /app:alice\s+running/);
    assert.match(human.stdout, /instances? on \d nodes?/);

    const made = await apiCall(c1.kernel, 'POST', '/api/tokens', { authorization: `Bearer ${admin(c1)}` }, { name: 'alice', tenant: 'alice' });
    const { token } = JSON.parse(made.body) as { token: string };
    await waitFor(async () => (await apiCall(c2.kernel, 'GET', '/api/fleet/placements', { authorization: `Bearer ${token}` })).status === 200, 'the tenant token on c2', 15_000);
    const tenant = await ten(['ps', '--fleet', '--json', ...via(c2, token)], cwd);
    assert.equal(tenant.code, 0, tenant.stderr);
    const rows = (JSON.parse(tenant.stdout) as { instances: Array<{ key: string }> }).instances;
    assert.deepEqual(rows.map((r) => r.key), ['app:alice']);
    const denied = await ten(['fleet', 'nodes', ...via(c2, token)], cwd);
    assert.notEqual(denied.code, 0);
  });
});
