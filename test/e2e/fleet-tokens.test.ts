// API tokens fleet-wide (plugins/fleet/tokens.ts over ctx.tokens and auth-bearer): a real 3-server NATS cluster
// and 3 Tenement kernels. A token made on one node works on every node, a revoke reaches every node (measured),
// tenant scope holds through every node, and what a hostile writer puts in the tokens bucket is refused.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect, type KV, type NatsConnection } from 'nats';
import type { TokenRecord } from '../../core/token-sync.ts';
import { TOKENS_BUCKET, encodeEnvelope } from '../../plugins/fleet/tokens.ts';
import { apiCall, request, sleep, waitFor } from '../helpers.ts';
import { natsServerAvailable, startNatsCluster, type NatsCluster } from '../nats-cluster.ts';
import { FLEET_SECRET, closeNode, fleetApp, tempFile, waitLive, type TestNode } from '../fleet-harness.ts';
import { startApiNode, startApiNodes } from '../fleet-api-node.ts';

const skip = natsServerAvailable() ? false : 'nats-server is not installed (apt-get install nats-server)';

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

describe('fleet-wide tokens', { skip, timeout: 300_000 }, () => {
  let cluster: NatsCluster;
  let nodes: TestNode[] = [];
  let nc: NatsConnection;
  let bucket: KV;
  const spawns = tempFile('tnm-fleet-tokens-');
  const admin = (node: TestNode): string => readFileSync(path.join(node.dataDir, 'admin.token'), 'utf8').trim();

  before(async () => {
    cluster = await startNatsCluster({ size: 3 });
    const services = { app: fleetApp(spawns.file) };
    await startApiNodes(['t1', 't2', 't3'], cluster.urls, services, nodes);
    await waitLive(nodes, 3);
    nc = await connect({ servers: cluster.urls });
    bucket = await nc.jetstream().views.kv(TOKENS_BUCKET);
  });

  after(async () => {
    await nc?.close().catch(() => undefined);
    await Promise.allSettled(nodes.map((node) => closeNode(node)));
    await cluster?.stop();
    spawns.remove();
  });

  /** Polls `node` with `token` until GET /api/instances answers `status`; the ms it took. */
  async function until(node: TestNode, token: string, status: number, timeoutMs = 10_000): Promise<number> {
    const started = performance.now();
    await waitFor(async () => (await apiCall(node.kernel, 'GET', '/api/instances', bearer(token))).status === status, `${node.id} to answer ${status}`, timeoutMs);
    return performance.now() - started;
  }

  test('each node\'s admin token works on every node', async () => {
    for (const from of nodes) {
      for (const on of nodes) {
        await until(on, admin(from), 200);
      }
    }
  });

  test('a node whose fleet plugin is set up before auth-bearer gets the fleet\'s tokens and shares its own', async () => {
    const late = await startApiNode('t4', cluster.urls, { app: fleetApp(spawns.file) }, { fleetFirst: true });
    nodes.push(late);
    await until(late, admin(nodes[0]!), 200);
    await until(nodes[0]!, admin(late), 200);
    await closeNode(late);
    nodes.pop();
  });

  test('a token made on one node works on every node; a revoke on any node reaches every node within a second', async () => {
    const [a, b, c] = nodes as [TestNode, TestNode, TestNode];
    const made = await apiCall(a.kernel, 'POST', '/api/tokens', bearer(admin(a)), { name: 'ci' });
    assert.equal(made.status, 201, made.body);
    const { id, token } = JSON.parse(made.body) as { id: string; token: string };
    const seen = [await until(b, token, 200), await until(c, token, 200)];
    console.log(`# token made on ${a.id} usable on ${b.id} after ${seen[0]!.toFixed(1)} ms, on ${c.id} after ${seen[1]!.toFixed(1)} ms`);

    // The token list on another node names it (never its secret or hash).
    const listed = await apiCall(c.kernel, 'GET', '/api/tokens', bearer(admin(c)));
    assert.ok(listed.body.includes(id));
    assert.ok(!listed.body.includes(token) && !listed.body.includes(createHash('sha256').update(token).digest('hex')));
    // The bucket holds its hash, never the secret.
    const stored = await bucket.get(id);
    assert.ok(stored);
    assert.ok(!stored.string().includes(token));
    assert.ok(stored.string().includes(createHash('sha256').update(token).digest('hex')));

    const revoked = await apiCall(a.kernel, 'DELETE', `/api/tokens/${id}`, bearer(admin(a)));
    assert.equal(revoked.status, 200, revoked.body);
    const refusedAfter = [await until(b, token, 401), await until(c, token, 401)];
    console.log(`# revoked on ${a.id}: refused on ${b.id} ${refusedAfter[0]!.toFixed(1)} ms and on ${c.id} ${refusedAfter[1]!.toFixed(1)} ms after the DELETE answered`);
    assert.ok(Math.max(...refusedAfter) < 1000, `every node refuses within a second (${refusedAfter.map((ms) => ms.toFixed(0)).join(', ')} ms)`);

    // A token made on one node can be revoked on another: the maker refuses it too.
    const second = JSON.parse((await apiCall(a.kernel, 'POST', '/api/tokens', bearer(admin(a)), { name: 'bot' })).body) as { id: string; token: string };
    await until(c, second.token, 200);
    const elsewhere = await apiCall(c.kernel, 'DELETE', `/api/tokens/${second.id}`, bearer(admin(c)));
    assert.equal(elsewhere.status, 200, elsewhere.body);
    const onMaker = await until(a, second.token, 401);
    console.log(`# revoked on ${c.id}: refused on the maker ${a.id} ${onMaker.toFixed(1)} ms later`);
  });

  test('a tenant token of alice reaches alice and never bob, through every node', async () => {
    const [a] = nodes as [TestNode];
    for (const id of ['alice', 'bob']) {
      const reply = await request(a.kernel, `${id}.app.localhost`, '/');
      assert.equal(reply.status, 200, reply.body);
    }
    const made = await apiCall(a.kernel, 'POST', '/api/tokens', bearer(admin(a)), { name: 'alice', tenant: 'alice' });
    const { token } = JSON.parse(made.body) as { token: string };
    for (const node of nodes) {
      await until(node, token, 200);
      const own = await apiCall(node.kernel, 'GET', '/api/fleet/placements', bearer(token));
      assert.equal(own.status, 200, own.body);
      const placements = (JSON.parse(own.body) as { placements: Array<{ id: string }> }).placements;
      assert.ok(placements.length >= 1 && placements.every((p) => p.id === 'alice'), `${node.id}: ${own.body}`);
      const list = JSON.parse((await apiCall(node.kernel, 'GET', '/api/instances', bearer(token))).body) as { instances: Array<{ id: string }> };
      assert.ok(list.instances.every((i) => i.id === 'alice'), `${node.id} lists only alice's: ${JSON.stringify(list)}`);
      for (const [method, url] of [
        ['GET', '/api/instances/app/bob'],
        ['POST', '/api/instances/app/bob/restart'],
        ['POST', '/api/instances/app/bob/hibernate'],
        ['DELETE', '/api/instances/app/bob'],
        ['GET', '/api/fleet/nodes'],
        ['POST', '/api/fleet/nodes/t1/drain'],
        ['POST', '/api/tokens'],
        ['GET', '/api/tokens'],
      ] as const) {
        const reply = await apiCall(node.kernel, method, url, bearer(token), method === 'POST' ? {} : undefined);
        assert.ok(reply.status === 403 || reply.status === 404, `${node.id} ${method} ${url}: ${reply.status} ${reply.body}`);
      }
    }
    // bob still runs, untouched.
    assert.equal((await request(a.kernel, 'bob.app.localhost', '/')).status, 200);
  });

  test('the tokens bucket is not a way in: forged, malformed, misplaced and un-revoking records are refused', async () => {
    const [a, b] = nodes as [TestNode, TestNode];
    const secret = `tnm_${randomBytes(32).toString('base64url')}`;
    const record = (id: string, overrides: Partial<TokenRecord> = {}): TokenRecord => ({
      id,
      name: 'intruder',
      kind: 'admin',
      tenant: null,
      hash: createHash('sha256').update(secret).digest('hex'),
      createdAt: Date.now(),
      expiresAt: null,
      revokedAt: null,
      ...overrides,
    });
    const encode = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
    // Signed with a guessed secret instead of the fleet's.
    await bucket.put('tok_00000000000000a1', encodeEnvelope('not-the-fleet-secret', record('tok_00000000000000a1')));
    // Unsigned, junk, oversized, a value copied under another key, hostile names.
    await bucket.put('tok_00000000000000a2', encode({ v: 1, record: record('tok_00000000000000a2'), mac: '' }));
    await bucket.put('tok_00000000000000a3', encode('junk'));
    await bucket.put('tok_00000000000000a4', new Uint8Array(64 * 1024).fill(123));
    await bucket.put('tok_00000000000000a5', encodeEnvelope(FLEET_SECRET, record('tok_00000000000000a6')));
    await bucket.put('__proto__', encodeEnvelope(FLEET_SECRET, record('__proto__')));
    await bucket.put('constructor', encode({ v: 1, record: { ...record('constructor'), kind: 'root' }, mac: 'x' }));
    // Validly signed but with fields the keeper refuses (a tenant that is no DNS label, an admin with a tenant).
    await bucket.put('tok_00000000000000b1', encodeEnvelope(FLEET_SECRET, record('tok_00000000000000b1', { kind: 'tenant', tenant: '../bob' })));
    await bucket.put('tok_00000000000000b2', encodeEnvelope(FLEET_SECRET, record('tok_00000000000000b2', { tenant: 'alice' })));
    await sleep(500);
    for (const node of nodes) {
      const reply = await apiCall(node.kernel, 'GET', '/api/instances', bearer(secret));
      assert.equal(reply.status, 401, `${node.id}: ${reply.status} ${reply.body}`);
      assert.equal((await apiCall(node.kernel, 'GET', '/api/tokens', bearer(admin(node)))).status, 200, 'the node still works');
    }
    assert.equal(({} as Record<string, unknown>).name, undefined);

    // A revoked token stays revoked whatever the bucket later says (a revocation is never undone).
    const made = JSON.parse((await apiCall(a.kernel, 'POST', '/api/tokens', bearer(admin(a)), { name: 'gone' })).body) as { id: string; token: string };
    await until(b, made.token, 200);
    assert.equal((await apiCall(a.kernel, 'DELETE', `/api/tokens/${made.id}`, bearer(admin(a)))).status, 200);
    await until(b, made.token, 401);
    const entry = await bucket.get(made.id);
    const revokedRecord = (JSON.parse(entry!.string()) as { record: TokenRecord }).record;
    assert.notEqual(revokedRecord.revokedAt, null);
    await bucket.put(made.id, encodeEnvelope(FLEET_SECRET, { ...revokedRecord, revokedAt: null }));
    await sleep(500);
    for (const node of nodes) assert.equal((await apiCall(node.kernel, 'GET', '/api/instances', bearer(made.token))).status, 401, node.id);
    // ... and the nodes put the revocation back into the bucket.
    await waitFor(async () => (JSON.parse((await bucket.get(made.id))!.string()) as { record: TokenRecord }).record.revokedAt !== null, 'the revocation restored in the bucket', 10_000);
  });
});
