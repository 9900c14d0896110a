// Moving an instance between fleet nodes with its data (plugins/fleet/move.ts, plugins/snapshots/migrate.ts): a real
// 3-server NATS cluster, 2 Tenement nodes with the fleet and snapshots plugins, real CRIU. `ten move`'s route keeps
// the app's in-memory state (restored, not started again) and every write under load; drain under traffic moves
// DATA_DIR with no write or request lost; node-to-node calls without the fleet secret's signature are refused.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { signCall, NODE_HEADER } from '../../plugins/fleet/peer.ts';
import snapshots from '../../plugins/snapshots/index.ts';
import { criuStatus } from '../../plugins/snapshots/criu.ts';
import { apiCall, request, waitFor } from '../helpers.ts';
import { natsServerAvailable, startNatsCluster, type NatsCluster } from '../nats-cluster.ts';
import { FLEET_SECRET, closeNode, startNode, waitLive, type TestNode } from '../fleet-harness.ts';

const APP = `import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
const log = path.join(process.env.DATA_DIR, 'log');
// A cold start leaves a line: a restore does not run this again.
fs.appendFileSync(path.join(process.env.DATA_DIR, 'starts'), process.pid + '\\n');
let count = 0;
http.createServer((req, res) => {
  if (req.url === '/health') return res.end('ok');
  if (req.url.startsWith('/append/')) {
    fs.appendFileSync(log, req.url.slice(8) + '\\n');
    return res.end('ok');
  }
  if (req.url === '/log') return res.end(fs.existsSync(log) ? fs.readFileSync(log) : '');
  count += 1;
  res.end(JSON.stringify({ count, pid: process.pid, dataDir: process.env.DATA_DIR, starts: fs.readFileSync(path.join(process.env.DATA_DIR, 'starts'), 'utf8').trim().split('\\n').length }));
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

interface State {
  count: number;
  pid: number;
  dataDir: string;
  starts: number;
}

/** A Node CRIU can checkpoint (no io_uring rings: Node 20), as in snapshots.test.ts. */
function dumpableNode(): string | null {
  const candidates = [process.execPath, ...execFileSync('which', ['-a', 'node'], { encoding: 'utf8' }).split('\n').filter(Boolean)];
  for (const node of new Set(candidates)) {
    const probe = spawnSync(node, ['-e', "process.stdout.write(String(require('fs').readFileSync('/proc/self/maps', 'utf8').includes('anon_inode:[io_uring]')))"], { encoding: 'utf8' });
    if (probe.status === 0 && probe.stdout === 'false') return node;
  }
  return null;
}

const criu = await criuStatus();
const NODE = criu.usable ? dumpableNode() : null;
const skip = natsServerAvailable() ? false : 'nats-server is not installed (apt-get install nats-server)';

describe('fleet: moving an instance with its data', { skip, timeout: 240_000 }, () => {
  let cluster: NatsCluster;
  let nodes: TestNode[] = [];
  const appDir = mkdtempSync(path.join(os.tmpdir(), 'tnm-move-app-'));

  before(async () => {
    chmodSync(appDir, 0o755);
    writeFileSync(path.join(appDir, 'app.mjs'), APP, { mode: 0o644 });
    cluster = await startNatsCluster({ size: 3 });
    const services = {
      app: { command: `${NODE ?? 'node'} ${path.join(appDir, 'app.mjs')}`, health: '/health', startupTimeout: '30s', autoCreate: { max: 100, perAddress: { count: 1000, window: '1m' } } },
    };
    nodes = await Promise.all(['m1', 'm2'].map((id, i) => startNode(id, [cluster.urls[i]!, ...cluster.urls.filter((_, j) => j !== i)], services, {}, {}, [snapshots])));
    await waitLive(nodes, 2);
  });

  after(async () => {
    await Promise.allSettled(nodes.map((node) => closeNode(node)));
    await cluster?.stop();
    rmSync(appDir, { recursive: true, force: true });
  });

  const admin = (node: TestNode): Record<string, string> => ({ authorization: `Bearer ${readFileSync(path.join(node.dataDir, 'admin.token'), 'utf8').trim()}` });
  const ownerOf = (id: string): TestNode => {
    const placement = nodes[0]!.fleet.state.placement('app', id);
    const owner = nodes.find((n) => n.id === placement?.node);
    assert.ok(owner, `app:${id} is placed on a node of this test (${placement?.node})`);
    return owner;
  };
  const state = async (node: TestNode, id: string): Promise<State> => {
    const reply = await request(node.kernel, `${id}.app.localhost`, '/state', { timeoutMs: 60_000 });
    assert.equal(reply.status, 200, reply.body);
    return JSON.parse(reply.body) as State;
  };

  /** Appends 0, 1, 2... through every node until stopped; what answered 200 must be in the log afterwards. */
  function load(id: string): { stop(): Promise<{ written: number[]; failures: string[] }> } {
    let stopping = false;
    let next = 0;
    const written: number[] = [];
    const failures: string[] = [];
    const loops = nodes.map(async (node) => {
      while (!stopping) {
        const n = next++;
        const reply = await request(node.kernel, `${id}.app.localhost`, `/append/${n}`, { timeoutMs: 60_000 }).catch((error: Error) => ({ status: 0, body: error.message }));
        if (reply.status === 200) written.push(n);
        else failures.push(`${node.id} /append/${n}: ${reply.status} ${reply.body.slice(0, 200)}`);
      }
    });
    return {
      async stop() {
        stopping = true;
        await Promise.all(loops);
        return { written, failures };
      },
    };
  }

  const logOf = async (node: TestNode, id: string): Promise<Set<number>> => {
    const reply = await request(node.kernel, `${id}.app.localhost`, '/log');
    assert.equal(reply.status, 200, reply.body);
    return new Set(reply.body.split('\n').filter(Boolean).map(Number));
  };

  // The two nodes of this test share one host, so their data folders differ: a restored process would keep the old
  // DATA_DIR path, and the move falls back to stop-copy-start, saying why (a live move needs the same dataDir).
  test('ten move (API) under load: DATA_DIR moves, no write or request is lost, the fallback from live says why', async (t) => {
    const before = await state(nodes[0]!, 'alice');
    await state(nodes[1]!, 'alice');
    const owner = ownerOf('alice');
    const target = nodes.find((n) => n !== owner)!;
    const traffic = load('alice');
    await waitFor(async () => (await logOf(owner, 'alice')).size >= 5, 'some writes before the move', 30_000);
    // Asked of the node that does not own it: the owner moves it.
    const moved = await apiCall(target.kernel, 'POST', '/api/fleet/instances/app/alice/move', admin(target), { to: target.id });
    const { written, failures } = await traffic.stop();
    assert.equal(moved.status, 200, moved.body);
    const result = JSON.parse(moved.body) as { mode: string; reason: string | null; pauseMs: number; bytes: number; to: string };
    t.diagnostic(`move: ${JSON.stringify(result)}; ${written.length} writes under load`);
    assert.equal(result.to, target.id);
    assert.equal(result.mode, 'cold');
    assert.match(result.reason ?? '', /DATA_DIR is .* here and .* on m\d: a restored process would keep the old path/);
    assert.deepEqual(failures, [], 'no request failed');
    const after = await state(nodes[0]!, 'alice');
    assert.ok(after.dataDir.startsWith(target.dataDir), `it runs on ${target.id} now`);
    assert.notEqual(after.pid, before.pid, 'started afresh on the target');
    assert.equal(after.starts, 2, "the target's start was recorded in the DATA_DIR that came along");
    const log = await logOf(target, 'alice');
    const lost = written.filter((n) => !log.has(n));
    assert.deepEqual(lost, [], 'every acknowledged write is in DATA_DIR on the target');
    const leftovers = [owner, target].flatMap((n) => {
      const dirs = [path.join(n.dataDir, '.fleet-moves'), path.join(n.dataDir, '.migrations')].filter((dir) => existsSync(dir));
      return dirs.length === 0 ? [] : execFileSync('find', [...dirs, '-type', 'f'], { encoding: 'utf8' }).split('\n').filter(Boolean);
    });
    assert.deepEqual(leftovers, [], 'images and archives are deleted after the restore');
  });

  test('drain under traffic moves DATA_DIR: a file written before is there after, no write or request lost', async () => {
    await state(nodes[0]!, 'bob');
    const owner = ownerOf('bob');
    assert.equal((await request(owner.kernel, 'bob.app.localhost', '/append/before')).status, 200);
    const traffic = load('bob');
    await waitFor(async () => (await logOf(owner, 'bob')).size >= 5, 'some writes before the drain', 30_000);
    assert.equal((await apiCall(nodes[0]!.kernel, 'POST', `/api/fleet/nodes/${owner.id}/drain`, admin(nodes[0]!))).status, 200);
    await waitFor(() => nodes.every((n) => n.fleet.state.placement('app', 'bob')?.node !== owner.id), 'bob to leave the drained node', 60_000);
    const target = nodes.find((n) => n !== owner)!;
    await waitFor(async () => (await logOf(target, 'bob')).size > 0, 'writes on the new node', 30_000);
    const { written, failures } = await traffic.stop();
    assert.equal((await apiCall(nodes[0]!.kernel, 'POST', `/api/fleet/nodes/${owner.id}/uncordon`, admin(nodes[0]!))).status, 200);
    assert.deepEqual(failures, [], `all ${written.length} requests answered`);
    const after = await state(target, 'bob');
    assert.ok(after.dataDir.startsWith(target.dataDir), `bob runs on ${target.id}`);
    const reply = await request(target.kernel, 'bob.app.localhost', '/log');
    assert.ok(reply.body.split('\n').includes('before'), 'the file written before the drain is on the new node');
    const log = await logOf(target, 'bob');
    assert.deepEqual(written.filter((n) => !log.has(n)), [], 'every acknowledged write is there');
    await waitFor(() => nodes[0]!.fleet.state.node(owner.id)?.state === 'active', 'the node active again', 10_000);
  });

  test('node-to-node move calls need the fleet signature; a move to an unknown node is a coded 404', async () => {
    const [m1] = nodes as [TestNode, TestNode];
    const post = (url: string, body: unknown, headers: Record<string, string> = {}) =>
      request(m1.kernel, 'localhost', url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    const receive = { service: 'app', id: 'alice', token: 'A'.repeat(32), bytes: 10, sha256: '0'.repeat(64), images: false };
    const unsigned = await post('/api/fleet/internal/receive', receive);
    assert.equal(unsigned.status, 403, unsigned.body);
    assert.match(unsigned.body, /TNM_ERR_FLEET_FORGED/);
    const forged = await post('/api/fleet/internal/receive', receive, { [NODE_HEADER]: signCall('not-the-fleet-secret-0123456789', 'm2', 'POST', '/api/fleet/internal/receive', JSON.stringify(receive)) });
    assert.equal(forged.status, 403, forged.body);
    // Signed for another body: the signature covers it.
    const other = { ...receive, id: 'bob' };
    const swapped = await post('/api/fleet/internal/receive', receive, { [NODE_HEADER]: signCall(FLEET_SECRET, 'm2', 'POST', '/api/fleet/internal/receive', JSON.stringify(other)) });
    assert.equal(swapped.status, 403, swapped.body);
    const archive = await request(m1.kernel, 'localhost', `/api/fleet/internal/archive/${'A'.repeat(32)}`);
    assert.equal(archive.status, 403, archive.body);
    const commit = { service: 'app', id: 'alice', placement: { node: 'm1' }, start: true };
    assert.equal((await post('/api/fleet/internal/commit', commit)).status, 403);
    // Genuine but unannounced: refused, and never replayable.
    const abort = { service: 'app', id: 'nobody' };
    const signature = signCall(FLEET_SECRET, 'm2', 'POST', '/api/fleet/internal/abort', JSON.stringify(abort));
    assert.equal((await post('/api/fleet/internal/abort', abort, { [NODE_HEADER]: signature })).status, 200);
    assert.equal((await post('/api/fleet/internal/abort', abort, { [NODE_HEADER]: signature })).status, 403, 'a replayed signature is refused');
    const sneaky = { ...receive, id: '..' };
    const traversal = await post('/api/fleet/internal/receive', sneaky, { [NODE_HEADER]: signCall(FLEET_SECRET, 'm2', 'POST', '/api/fleet/internal/receive', JSON.stringify(sneaky)) });
    assert.equal(traversal.status, 400, traversal.body);
    const signedCommit = signCall(FLEET_SECRET, 'm2', 'POST', '/api/fleet/internal/commit', JSON.stringify(commit));
    assert.equal((await post('/api/fleet/internal/commit', commit, { [NODE_HEADER]: signedCommit })).status, 409, 'a commit nobody announced');

    const unknown = await apiCall(m1.kernel, 'POST', '/api/fleet/instances/app/alice/move', admin(m1), { to: 'nowhere' });
    assert.equal(unknown.status, 404, unknown.body);
    assert.match(unknown.body, /TNM_ERR_NOT_FOUND/);
    const nobody = await apiCall(m1.kernel, 'POST', '/api/fleet/instances/app/__proto__/move', admin(m1), { to: 'm2' });
    assert.equal(nobody.status, 404, nobody.body);
    const created = await apiCall(m1.kernel, 'POST', '/api/tokens', admin(m1), { name: 'alice', tenant: 'alice' });
    const tenant = { authorization: `Bearer ${(JSON.parse(created.body) as { token: string }).token}` };
    assert.equal((await apiCall(m1.kernel, 'POST', '/api/fleet/instances/app/alice/move', tenant, { to: 'm2' })).status, 403, 'a tenant cannot move itself');
  });
});
