// Moving an instance between fleet nodes with its data (plugins/fleet/move.ts, plugins/snapshots/migrate.ts): a real
// 3-server NATS cluster, 2 Tenement nodes with the fleet and snapshots plugins, real CRIU. The second node runs in a
// child process of its own mount namespace where its own folder is mounted over the first node's data path, so both
// have the same DATA_DIR paths, as two hosts with the same settings.dataDir (test/fleet-node-process.ts). `ten
// move`'s route keeps the app's in-memory state (restored, not started again) and every write under load; drain
// under traffic moves DATA_DIR with no write or request lost; node-to-node calls without the fleet secret's
// signature are refused; a move to a node with another data path falls back to stop-copy-start, saying why.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { signCall, NODE_HEADER } from '../../plugins/fleet/peer.ts';
import snapshots from '../../plugins/snapshots/index.ts';
import { criuStatus } from '../../plugins/snapshots/criu.ts';
import { request, waitFor, type Reply } from '../helpers.ts';
import { ten } from '../ten-cli.ts';
import { natsServerAvailable, startNatsCluster, type NatsCluster } from '../nats-cluster.ts';
import type { ServiceInput } from '../../core/config/schema.ts';
import { fleetOf, type FleetNode } from '../../plugins/fleet/index.ts';
import { FLEET_SECRET, closeNode, startNode, type TestNode } from '../fleet-harness.ts';
import { startChildNode, type MoveNode } from '../fleet-child-node.ts';
import { dumpableNode } from '../dumpable-node.ts';

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


const criu = await criuStatus();
const NODE = criu.usable ? dumpableNode() : null;
const skip = !natsServerAvailable()
  ? 'nats-server is not installed (apt-get install nats-server)'
  : process.getuid?.() !== 0
    ? 'needs root: the second node runs in a mount namespace of its own (unshare -m), and CRIU needs root'
    : false;
const LIVE = NODE !== null;

describe('fleet: moving an instance with its data', { skip, timeout: 240_000 }, () => {
  let cluster: NatsCluster;
  let nodes: MoveNode[] = [];
  let m1: TestNode;
  let fleet: FleetNode;
  const appDir = mkdtempSync(path.join(os.tmpdir(), 'tnm-move-app-'));
  const m2Files = mkdtempSync(path.join(os.tmpdir(), 'tnm-move-m2-'));
  let services: Record<string, ServiceInput> = {};

  before(async () => {
    chmodSync(appDir, 0o755);
    writeFileSync(path.join(appDir, 'app.mjs'), APP, { mode: 0o644 });
    cluster = await startNatsCluster({ size: 3 });
    services = {
      app: { command: `${NODE ?? 'node'} ${path.join(appDir, 'app.mjs')}`, health: '/health', startupTimeout: '30s', autoCreate: { max: 100, perAddress: { count: 1000, window: '1m' } } },
    };
    m1 = await startNode('m1', cluster.urls, services, {}, {}, [snapshots]);
    fleet = fleetOf('m1')!;
    const m2 = await startChildNode('m2', [cluster.urls[1]!, cluster.urls[0]!, cluster.urls[2]!], services, m1.dataDir, m2Files);
    nodes = [{ id: 'm1', url: m1.kernel.url, files: m1.dataDir, close: () => closeNode(m1) }, m2];
    await waitFor(() => fleet.state.nodes().filter((n) => n.live).length === 2, 'both nodes live', 30_000);
  });

  after(async () => {
    await Promise.allSettled(nodes.map((node) => node.close()));
    await cluster?.stop();
    rmSync(appDir, { recursive: true, force: true });
    rmSync(m2Files, { recursive: true, force: true });
  });

  const admin = (node: MoveNode): Record<string, string> => ({ authorization: `Bearer ${readFileSync(path.join(node.files, 'admin.token'), 'utf8').trim()}` });
  const api = (node: MoveNode, method: string, url: string, headers: Record<string, string>, body?: unknown): Promise<Reply> =>
    request(node.url, 'localhost', url, { method, ...(body === undefined ? { headers } : { headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) }) });
  const ownerOf = (id: string): MoveNode => {
    const placement = fleet.state.placement('app', id);
    const owner = nodes.find((n) => n.id === placement?.node);
    assert.ok(owner, `app:${id} is placed on a node of this test (${placement?.node})`);
    return owner;
  };
  const state = async (node: MoveNode, id: string): Promise<State> => {
    const reply = await request(node.url, `${id}.app.localhost`, '/state', { timeoutMs: 60_000 });
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
        const reply = await request(node.url, `${id}.app.localhost`, `/append/${n}`, { timeoutMs: 60_000 }).catch((error: Error) => ({ status: 0, body: error.message }));
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

  /** The instance's log as the node's own files hold it. */
  const logOn = (node: MoveNode, id: string): Set<number | string> => {
    const file = path.join(node.files, 'instances', 'app', id, 'log');
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    return new Set(text.split('\n').filter(Boolean).map((line) => (/^\d+$/.test(line) ? Number(line) : line)));
  };

  test('ten move (API) under load: restored with its memory on the target, DATA_DIR moved, no write or request lost', async (t) => {
    const before = await state(nodes[0]!, 'alice');
    await state(nodes[1]!, 'alice');
    const owner = ownerOf('alice');
    const target = nodes.find((n) => n !== owner)!;
    const traffic = load('alice');
    await waitFor(() => logOn(owner, 'alice').size >= 5, 'some writes before the move', 30_000);
    // Asked of the node that does not own it: the owner moves it.
    const moved = await api(target, 'POST', '/api/fleet/instances/app/alice/move', admin(target), { to: target.id });
    const { written, failures } = await traffic.stop();
    assert.equal(moved.status, 200, moved.body);
    const result = JSON.parse(moved.body) as { mode: string; reason: string | null; pauseMs: number; bytes: number; to: string };
    t.diagnostic(`move ${owner.id} -> ${target.id}: ${JSON.stringify(result)}; ${written.length} writes under load`);
    assert.equal(result.to, target.id);
    assert.deepEqual(failures, [], 'no request failed');
    assert.equal(fleet.state.placement('app', 'alice')?.node, target.id);
    const after = await state(nodes[0]!, 'alice');
    if (LIVE) {
      assert.equal(result.mode, 'live', `restored, not cold-started: ${result.reason}`);
      assert.equal(after.pid, before.pid, 'the same process, restored');
      assert.equal(after.starts, 1, 'never started cold');
      assert.ok(after.count > before.count + 1, `its memory came along (count ${before.count} -> ${after.count})`);
    } else {
      t.diagnostic(`CRIU cannot save the app here (${criu.usable ? 'io_uring' : criu.reason}): the move is stop-copy-start`);
      assert.equal(result.mode, 'cold');
    }
    const log = logOn(target, 'alice');
    assert.deepEqual(written.filter((n) => !log.has(n)), [], "every acknowledged write is in the target's DATA_DIR");
    const leftovers = (): string[] =>
      nodes.flatMap((n) => {
        const dirs = [path.join(n.files, '.fleet-moves'), path.join(n.files, '.migrations')].filter((dir) => existsSync(dir));
        return dirs.length === 0 ? [] : execFileSync('find', [...dirs, '-type', 'f'], { encoding: 'utf8' }).split('\n').filter(Boolean);
      });
    // Deleted off the pause (after the requests go on): soon after the move, not before it answers.
    await waitFor(() => leftovers().length === 0, 'images and archives deleted after the restore', 30_000).catch(() => undefined);
    assert.deepEqual(leftovers(), [], 'images and archives are deleted after the restore');
  });

  test('drain under traffic moves DATA_DIR: a file written before is there after, no write or request lost', async () => {
    await state(nodes[0]!, 'bob');
    const owner = ownerOf('bob');
    const target = nodes.find((n) => n !== owner)!;
    assert.equal((await request(owner.url, 'bob.app.localhost', '/append/before')).status, 200);
    const traffic = load('bob');
    await waitFor(() => logOn(owner, 'bob').size >= 5, 'some writes before the drain', 30_000);
    assert.equal((await api(nodes[0]!, 'POST', `/api/fleet/nodes/${owner.id}/drain`, admin(nodes[0]!))).status, 200);
    await waitFor(() => fleet.state.placement('app', 'bob')?.node === target.id, 'bob to leave the drained node', 60_000);
    await waitFor(() => logOn(target, 'bob').size > 0, 'writes on the new node', 30_000);
    const { written, failures } = await traffic.stop();
    assert.equal((await api(nodes[0]!, 'POST', `/api/fleet/nodes/${owner.id}/uncordon`, admin(nodes[0]!))).status, 200);
    assert.deepEqual(failures, [], `all ${written.length} requests answered`);
    const log = logOn(target, 'bob');
    assert.ok(log.has('before'), 'the file written before the drain is on the new node');
    assert.deepEqual(written.filter((n) => !log.has(n)), [], 'every acknowledged write is there');
    await waitFor(() => fleet.state.node(owner.id)?.state === 'active', 'the node active again', 10_000);
  });

  test('ten move (CLI): the instance moves back, as JSON or a sentence; an unknown node or a bad target is an error', async () => {
    const first = nodes[0]!;
    const owner = ownerOf('alice');
    const to = nodes.find((n) => n !== owner)!;
    const token = readFileSync(path.join(first.files, 'admin.token'), 'utf8').trim();
    const flags = ['--server', first.url, '--token', token];
    const moved = await ten(['move', 'app:alice', '--to', to.id, '--json', ...flags], os.tmpdir());
    assert.equal(moved.code, 0, moved.stderr);
    const answer = JSON.parse(moved.stdout) as { from: string; to: string; mode: string };
    assert.deepEqual([answer.from, answer.to], [owner.id, to.id]);
    assert.equal(answer.mode, LIVE ? 'live' : 'cold');
    assert.equal(fleet.state.placement('app', 'alice')?.node, to.id);
    const again = await ten(['move', 'app:alice', '--to', owner.id, ...flags], os.tmpdir());
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`app:alice moved ${to.id} -> ${owner.id}: .*paused \\d+ ms`));
    const unknown = await ten(['move', 'app:alice', '--to', 'nowhere', ...flags], os.tmpdir());
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /TNM_ERR_NOT_FOUND|unknown fleet node/);
    const malformed = await ten(['move', 'alice', '--to', owner.id, ...flags], os.tmpdir());
    assert.notEqual(malformed.code, 0);
    assert.match(malformed.stderr, /TNM_ERR_BAD_NAME: 'alice' is not service:id/);
    const hostile = await ten(['move', 'app:../alice', '--to', owner.id, ...flags], os.tmpdir());
    assert.notEqual(hostile.code, 0);
    assert.match(hostile.stderr, /TNM_ERR_BAD_NAME/);
  });

  test('node-to-node move calls need the fleet signature; a move to an unknown node is a coded 404', async () => {
    const first = nodes[0]!;
    const post = (url: string, body: unknown, headers: Record<string, string> = {}) => api(first, 'POST', url, headers, body);
    const receive = { service: 'app', id: 'alice', token: 'A'.repeat(32), images: false };
    const unsigned = await post('/api/fleet/internal/receive', receive);
    assert.equal(unsigned.status, 403, unsigned.body);
    assert.match(unsigned.body, /TNM_ERR_FLEET_FORGED/);
    const forged = await post('/api/fleet/internal/receive', receive, { [NODE_HEADER]: signCall('not-the-fleet-secret-0123456789', 'm2', 'm1', 'POST', '/api/fleet/internal/receive', JSON.stringify(receive)) });
    assert.equal(forged.status, 403, forged.body);
    // Signed for another body: the signature covers it.
    const other = { ...receive, id: 'bob' };
    const swapped = await post('/api/fleet/internal/receive', receive, { [NODE_HEADER]: signCall(FLEET_SECRET, 'm2', 'm1', 'POST', '/api/fleet/internal/receive', JSON.stringify(other)) });
    assert.equal(swapped.status, 403, swapped.body);
    // Signed for another node: a call captured on its way to m2 cannot be replayed at m1.
    const elsewhere = await post('/api/fleet/internal/receive', other, { [NODE_HEADER]: signCall(FLEET_SECRET, 'm2', 'm2', 'POST', '/api/fleet/internal/receive', JSON.stringify(other)) });
    assert.equal(elsewhere.status, 403, elsewhere.body);
    const archive = await request(first.url, 'localhost', `/api/fleet/internal/archive/${'A'.repeat(32)}`);
    assert.equal(archive.status, 403, archive.body);
    const commit = { service: 'app', id: 'alice', placement: { node: 'm1' }, start: true };
    assert.equal((await post('/api/fleet/internal/commit', commit)).status, 403);
    // Genuine but unannounced: refused, and never replayable.
    const abort = { service: 'app', id: 'nobody' };
    const signature = signCall(FLEET_SECRET, 'm2', 'm1', 'POST', '/api/fleet/internal/abort', JSON.stringify(abort));
    assert.equal((await post('/api/fleet/internal/abort', abort, { [NODE_HEADER]: signature })).status, 200);
    assert.equal((await post('/api/fleet/internal/abort', abort, { [NODE_HEADER]: signature })).status, 403, 'a replayed signature is refused');
    const sneaky = { ...receive, id: '..' };
    const traversal = await post('/api/fleet/internal/receive', sneaky, { [NODE_HEADER]: signCall(FLEET_SECRET, 'm2', 'm1', 'POST', '/api/fleet/internal/receive', JSON.stringify(sneaky)) });
    assert.equal(traversal.status, 400, traversal.body);
    const signedCommit = signCall(FLEET_SECRET, 'm2', 'm1', 'POST', '/api/fleet/internal/commit', JSON.stringify(commit));
    assert.equal((await post('/api/fleet/internal/commit', commit, { [NODE_HEADER]: signedCommit })).status, 409, 'a commit nobody announced');

    const unknown = await api(first, 'POST', '/api/fleet/instances/app/alice/move', admin(first), { to: 'nowhere' });
    assert.equal(unknown.status, 404, unknown.body);
    assert.match(unknown.body, /TNM_ERR_NOT_FOUND/);
    const nobody = await api(first, 'POST', '/api/fleet/instances/app/__proto__/move', admin(first), { to: 'm2' });
    assert.equal(nobody.status, 404, nobody.body);
    const created = await api(first, 'POST', '/api/tokens', admin(first), { name: 'alice', tenant: 'alice' });
    const tenant = { authorization: `Bearer ${(JSON.parse(created.body) as { token: string }).token}` };
    assert.equal((await api(first, 'POST', '/api/fleet/instances/app/alice/move', tenant, { to: 'm2' })).status, 403, 'a tenant cannot move itself');
  });

  test('a node with another data path: the move falls back to stop-copy-start and says why', async (t) => {
    const m3 = await startNode('m3', [cluster.urls[2]!, cluster.urls[0]!], services, {}, {}, [snapshots]);
    t.after(() => closeNode(m3));
    const third: MoveNode = { id: 'm3', url: m3.kernel.url, files: m3.dataDir, close: () => closeNode(m3) };
    await waitFor(() => fleet.state.isLive('m3'), 'm3 live', 30_000);
    const owner = ownerOf('alice');
    const moved = await api(owner, 'POST', '/api/fleet/instances/app/alice/move', admin(owner), { to: 'm3' });
    assert.equal(moved.status, 200, moved.body);
    const result = JSON.parse(moved.body) as { mode: string; reason: string | null };
    assert.equal(result.mode, 'cold');
    assert.match(result.reason ?? '', /DATA_DIR is .* here and .* on m3: a restored process would keep the old path/);
    assert.ok(logOn(third, 'alice').size > 0, "the data is in m3's own folder");
  });
});
