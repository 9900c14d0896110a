// Fleet mode's management and routing across nodes (plugins/fleet redirect.ts, relay.ts, fleet-instances.ts): a real
// 3-server NATS cluster and 2 Tenement kernels in redirect mode with the API and the dashboard. The redirect (status,
// Location, a client following it, hostile Host/X-Forwarded-Host, a moved placement forwarded, one spawn per herd),
// a WebSocket through a non-owner node (forwarded and signed), the fleet-wide instance list and actions relayed to
// the owner with the caller's identity (logs, their live stream, history and weight too), and the dashboard in a real
// browser acting on another node's instance and showing its owner's logs.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import WebSocket from 'ws';
import type { ServiceInput } from '../../core/config/schema.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import type { RequestInfo } from '../../core/types.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import dashboard from '../../plugins/dashboard/index.ts';
import fleet, { fleetOf } from '../../plugins/fleet/index.ts';
import { FORWARDED_HEADER, verifyForward } from '../../plugins/fleet/forward-auth.ts';
import { API_HEADER, signApiCall } from '../../plugins/fleet/relay.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import logs from '../../plugins/logs/index.ts';
import { assertNoConsoleProblems, browserSkipReason, DIST_INDEX, launchChromium, rowState, screenshot, signIn, watchConsole } from '../dashboard-browser.ts';
import { FLEET_SECRET, closeNode, fleetApp, tempFile, waitLive, type TestNode } from '../fleet-harness.ts';
import { apiCall, echoService, freePort, request, servePlugins, waitFor } from '../helpers.ts';
import { natsServerAvailable, startNatsCluster, type NatsCluster } from '../nats-cluster.ts';

const skip = natsServerAvailable() ? false : 'nats-server is not installed (apt-get install nats-server)';
const browserSkip = browserSkipReason();

interface AppReply {
  pid: number;
  dataDir: string;
  url: string;
}

async function startRedirectNode(id: string, servers: string[], services: Record<string, ServiceInput>, distDir: string): Promise<TestNode> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `tnm-fleet-${id}-`));
  const port = await freePort();
  const kernel = await createTestKernel({
    plugins: [...servePlugins, authBearer, instancesApi, logs, dashboard, fleet],
    config: {
      settings: {
        dataDir,
        port,
        fleet: { servers, node: id, heartbeatMs: 200, expiryMs: 4000, secret: FLEET_SECRET, routing: 'redirect', publicUrl: `http://{id}.{service}.localhost:${port}` },
      },
      services,
      pluginOptions: { dashboard: { distDir } },
    },
  }).catch((error: unknown) => {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  });
  const node = fleetOf(id);
  if (!node) throw new Error(`fleet node ${id} did not start`);
  return { id, kernel, fleet: node, dataDir };
}

/** Follows a Location the way a client does: to the host and port it names (`*.localhost` is 127.0.0.1). */
function follow(location: string, options: { method?: string; body?: string } = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  const url = new URL(location);
  assert.match(url.hostname, /\.localhost$/, `a loopback name: ${location}`);
  return request(`http://127.0.0.1:${url.port}`, url.hostname, `${url.pathname}${url.search}`, options);
}

/** A request through `node`, following one redirect: what a browser ends up with. */
async function reach(node: TestNode, host: string, target = '/'): Promise<{ status: number; body: string }> {
  const reply = await request(node.kernel, host, target);
  return reply.status === 307 ? follow(reply.headers.location!) : reply;
}

describe('fleet redirect mode, relayed management and the dashboard across nodes', { skip, timeout: 300_000 }, () => {
  let cluster: NatsCluster;
  const nodes: TestNode[] = [];
  const spawns = tempFile('tnm-fleet-redirect-');
  const uiDir = mkdtempSync(path.join(os.tmpdir(), 'tnm-fleet-ui-'));
  const admin = (node: TestNode): string => readFileSync(path.join(node.dataDir, 'admin.token'), 'utf8').trim();
  const owner = (service: string, id: string): TestNode => {
    const node = nodes.find((n) => n.id === nodes[0]!.fleet.state.placement(service, id)?.node);
    assert.ok(node, `${service}:${id} is placed on a node of this test`);
    return node;
  };
  const other = (node: TestNode): TestNode => nodes.find((n) => n !== node)!;

  before(async () => {
    // The test's own copy of the built UI: a rebuild elsewhere in the checkout cannot pull files from under it.
    const distDir = path.join(uiDir, 'dist');
    if (existsSync(DIST_INDEX)) cpSync(path.dirname(DIST_INDEX), distDir, { recursive: true });
    cluster = await startNatsCluster({ size: 3 });
    const services = { app: fleetApp(spawns.file), ws: echoService({ autoCreate: { max: 100, perAddress: { count: 1000, window: '1m' } } }) };
    for (const [i, id] of ['r1', 'r2'].entries()) {
      const own = cluster.urls[i]!;
      nodes.push(await startRedirectNode(id, [own, ...cluster.urls.filter((u) => u !== own)], services, distDir));
    }
    await waitLive(nodes, 2);
    await waitFor(() => nodes.every((n) => n.fleet.state.nodes().every((v) => v.publicUrl !== '')), 'every node sees the others\' publicUrl', 15_000);
    for (const a of nodes) for (const b of nodes) await waitFor(async () => (await apiCall(b.kernel, 'GET', '/api/tokens', { authorization: `Bearer ${admin(a)}` })).status === 200, 'tokens replicated', 15_000);
  });

  after(async () => {
    await Promise.allSettled(nodes.map((node) => closeNode(node)));
    await cluster?.stop();
    spawns.remove();
    rmSync(uiDir, { recursive: true, force: true });
  });

  test('a node that does not own the instance answers 307 to the owner; the client following it gets the tenant', async () => {
    const first = await request(nodes[0]!.kernel, 'alice.app.localhost', '/hello?x=1');
    const home = owner('app', 'alice');
    const away = other(home);
    if (home !== nodes[0]) assert.equal(first.status, 307, first.body);
    const port = new URL(home.kernel.url).port;
    for (const method of ['GET', 'POST']) {
      const reply = await request(away.kernel, 'alice.app.localhost', '/hello?x=1', { method, ...(method === 'POST' ? { body: 'kept' } : {}) });
      assert.equal(reply.status, 307, reply.body);
      assert.equal(reply.headers.location, `http://alice.app.localhost:${port}/hello?x=1`);
      assert.match(reply.body, /served by/);
      const followed = await follow(reply.headers.location!, { method, ...(method === 'POST' ? { body: 'kept' } : {}) });
      assert.equal(followed.status, 200, followed.body);
      assert.ok((JSON.parse(followed.body) as AppReply).dataDir.startsWith(home.dataDir), 'served on its owner');
    }
    // The owner itself serves it.
    assert.equal((await request(home.kernel, 'alice.app.localhost', '/')).status, 200);
  });

  test('nothing a client sends steers the Location: Host names only the tenant, X-Forwarded-Host and absolute targets are ignored', async () => {
    const home = owner('app', 'alice');
    const away = other(home);
    const origin = `http://alice.app.localhost:${new URL(home.kernel.url).port}`;
    const steered = await request(away.kernel, 'alice.app.localhost', '//evil.example/x', { headers: { 'x-forwarded-host': 'evil.example', forwarded: 'host=evil.example' } });
    assert.equal(steered.status, 307, steered.body);
    assert.equal(new URL(steered.headers.location!).origin, origin);
    assert.equal(steered.headers.location, `${origin}//evil.example/x`);
    const absolute = await request(away.kernel, 'alice.app.localhost', 'http://alice.app.localhost/abs?q=1');
    if (absolute.status === 307) assert.equal(absolute.headers.location, `${origin}/abs?q=1`);
    else assert.equal(absolute.status, 400, absolute.body);
    // Hosts that are no tenant never redirect.
    for (const host of ['__proto__.app.localhost', 'evil.example', 'alice.nosuch.localhost', 'a.b.app.localhost']) {
      const reply = await request(away.kernel, host, '/');
      assert.notEqual(reply.status, 307, `${host}: ${reply.status} ${reply.body}`);
      assert.equal(reply.headers.location, undefined);
    }
    // A node record naming an origin that is not a {id}.{service} template is not used for a Location.
    const kv = away.fleet.connection.nodes;
    const record = away.fleet.state.node(home.id)!;
    await kv.put('evil-node', new TextEncoder().encode(JSON.stringify({ ...record, id: 'evil-node', publicUrl: 'https://evil.example/' })));
    await waitFor(() => away.fleet.state.node('evil-node') !== undefined, 'the planted record read', 10_000);
    assert.equal(away.fleet.state.node('evil-node')!.publicUrl, '');
    await kv.delete('evil-node');
  });

  test('a herd redirected from both nodes to a hibernated instance spawns it once', async () => {
    assert.equal((await reach(nodes[0]!, 'herd.app.localhost')).status, 200);
    const home = owner('app', 'herd');
    const instance = home.kernel.instances.get('app', 'herd')!;
    await waitFor(() => instance.state === 'running', 'herd running', 30_000);
    await home.kernel.hibernate(instance, 'test');
    const count = (): number => readFileSync(spawns.file, 'utf8').split('\n').filter((l) => l.includes('/herd')).length;
    const before = count();
    const replies = await Promise.all(nodes.flatMap((node) => Array.from({ length: 6 }, () => request(node.kernel, 'herd.app.localhost', '/'))));
    const answered = await Promise.all(replies.map((reply) => (reply.status === 307 ? follow(reply.headers.location!) : reply)));
    for (const reply of answered) assert.equal(reply.status, 200, reply.body);
    assert.equal(new Set(answered.map((r) => (JSON.parse(r.body) as AppReply).pid)).size, 1, 'one process answered all');
    assert.equal(count() - before, 1, 'one spawn fleet-wide');
  });

  test('a placement that just moved is forwarded, not redirected (no redirect ping-pong while views differ)', async () => {
    assert.equal((await reach(nodes[0]!, 'mover.app.localhost')).status, 200);
    const from = owner('app', 'mover');
    const to = other(from);
    const placement = from.fleet.state.placement('app', 'mover')!;
    await from.fleet.placer.moveAway(placement);
    await waitFor(() => nodes.every((n) => n.fleet.state.placement('app', 'mover')?.node === to.id), 'the move seen by both nodes', 15_000);
    const reply = await request(from.kernel, 'mover.app.localhost', '/moved');
    assert.equal(reply.status, 200, `forwarded, not ${reply.status} ${reply.headers.location ?? ''}`);
    assert.ok((JSON.parse(reply.body) as AppReply).dataDir.startsWith(to.dataDir), 'served by the new owner');
  });

  test('a WebSocket through a node that does not own the instance is forwarded, signed, to its owner', async (t) => {
    assert.equal((await reach(nodes[0]!, 'sock.ws.localhost')).status, 200);
    const home = owner('ws', 'sock');
    const away = other(home);
    const seen: string[] = [];
    let recording = true;
    t.after(() => (recording = false));
    const tap = (info: RequestInfo): undefined => {
      const header = info.headers[FORWARDED_HEADER];
      if (recording && info.upgrade && info.hostname === 'sock.ws.localhost') {
        seen.push(typeof header === 'string' ? (verifyForward(FLEET_SECRET, header, { method: info.method, hostname: info.hostname, target: info.url }) ?? 'bad') : 'unsigned');
      }
      return undefined;
    };
    home.kernel.hooks.route.tap({ name: 'test-upgrades', stage: -100 }, tap);
    const ws = new WebSocket(`ws://127.0.0.1:${new URL(away.kernel.url).port}/chat`, { headers: { host: 'sock.ws.localhost' }, perMessageDeflate: false, handshakeTimeout: 60_000 });
    t.after(() => ws.terminate());
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`handshake answered ${res.statusCode}`)));
      ws.once('error', reject);
    });
    const echoed = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
    ws.send('hello across nodes');
    assert.equal(await echoed, 'echo:hello across nodes');
    assert.deepEqual(seen, [away.id], 'the owner got the upgrade signed by the node it came through');
  });

  test('GET /api/fleet/instances lists both nodes\' instances as their owners report them; a tenant sees its own, fleet-wide', async () => {
    for (const id of ['bob', 'carol', 'dave', 'erin']) assert.equal((await reach(nodes[1]!, `${id}.app.localhost`)).status, 200);
    const [r1, r2] = nodes as [TestNode, TestNode];
    const listed = await apiCall(r1.kernel, 'GET', '/api/fleet/instances', { authorization: `Bearer ${admin(r1)}` });
    assert.equal(listed.status, 200, listed.body);
    const answer = JSON.parse(listed.body) as { self: string; instances: Array<{ node: string; key: string; instance: { pid: number | null; state: string } | null }>; unreachable: string[] };
    assert.equal(answer.self, 'r1');
    assert.deepEqual(answer.unreachable, []);
    const byKey = new Map(answer.instances.map((r) => [r.key, r]));
    assert.deepEqual(new Set(answer.instances.map((r) => r.node)), new Set(['r1', 'r2']), 'instances of both nodes');
    for (const id of ['alice', 'bob', 'carol', 'dave']) {
      const row = byKey.get(`app:${id}`);
      assert.ok(row, `app:${id} listed`);
      assert.equal(row.node, owner('app', id).id);
      assert.equal(row.instance?.state, 'running');
      assert.equal(typeof row.instance?.pid, 'number', 'the owner\'s own view (a stand-in has no pid)');
    }

    const made = await apiCall(r1.kernel, 'POST', '/api/tokens', { authorization: `Bearer ${admin(r1)}` }, { name: 'bob', tenant: 'bob' });
    const { token } = JSON.parse(made.body) as { token: string };
    await waitFor(async () => (await apiCall(r2.kernel, 'GET', '/api/fleet/instances', { authorization: `Bearer ${token}` })).status === 200, 'the tenant token on r2', 15_000);
    for (const node of nodes) {
      const mine = JSON.parse((await apiCall(node.kernel, 'GET', '/api/fleet/instances', { authorization: `Bearer ${token}` })).body) as typeof answer;
      assert.deepEqual(mine.instances.map((r) => r.key), ['app:bob'], `via ${node.id}`);
      assert.equal(mine.instances[0]!.instance?.state, 'running');
      // Another tenant's instance: the same 404 as a missing one, through either node.
      const theirs = await apiCall(node.kernel, 'POST', '/api/fleet/instances/app/alice/hibernate', { authorization: `Bearer ${token}` });
      assert.equal(theirs.status, 404, theirs.body);
    }
    assert.equal(owner('app', 'alice').kernel.instances.get('app', 'alice')!.state, 'running');
  });

  test('an action on an instance placed elsewhere runs on its owner; relayed calls cannot be forged or replayed', async () => {
    const home = owner('app', 'carol');
    const away = other(home);
    const hibernated = await apiCall(away.kernel, 'POST', '/api/fleet/instances/app/carol/hibernate', { authorization: `Bearer ${admin(away)}` });
    assert.equal(hibernated.status, 200, hibernated.body);
    assert.equal((JSON.parse(hibernated.body) as { state: string }).state, 'hibernated');
    assert.equal(home.kernel.instances.get('app', 'carol')!.state, 'hibernated', 'hibernated on its owner');
    const started = await apiCall(away.kernel, 'POST', '/api/fleet/instances/app/carol/start', { authorization: `Bearer ${admin(away)}` });
    assert.equal(started.status, 200, started.body);
    assert.equal(home.kernel.instances.get('app', 'carol')!.state, 'running');
    for (const bad of ['/api/fleet/instances/app/carol/explode', '/api/fleet/instances/app/__proto__/restart', '/api/fleet/instances/app/nobody/restart']) {
      const reply = await apiCall(away.kernel, 'POST', bad, { authorization: `Bearer ${admin(away)}` });
      assert.ok(reply.status === 400 || reply.status === 404, `${bad}: ${reply.status}`);
    }
    // The relay header itself: forged (wrong secret, another target) and replayed calls are refused.
    const target = '/api/instances/app/carol/hibernate';
    const forged = signApiCall('not-the-fleet-secret-0123456789', away.id, home.id, { kind: 'admin', name: 'x' }, 'POST', target);
    assert.equal((await apiCall(home.kernel, 'POST', target, { [API_HEADER]: forged })).status, 403);
    const elsewhere = signApiCall(FLEET_SECRET, away.id, home.id, { kind: 'admin', name: 'x' }, 'POST', '/api/instances/app/dave/hibernate');
    assert.equal((await apiCall(home.kernel, 'POST', target, { [API_HEADER]: elsewhere })).status, 403);
    const toAnother = signApiCall(FLEET_SECRET, away.id, away.id, { kind: 'admin', name: 'x' }, 'POST', target);
    assert.equal((await apiCall(home.kernel, 'POST', target, { [API_HEADER]: toAnother })).status, 403, 'signed for another node');
    const genuine = signApiCall(FLEET_SECRET, away.id, home.id, { kind: 'tenant', tenant: 'carol', name: 'carol' }, 'GET', '/api/instances');
    const once = await apiCall(home.kernel, 'GET', '/api/instances', { [API_HEADER]: genuine });
    assert.equal(once.status, 200, once.body);
    assert.deepEqual((JSON.parse(once.body) as { instances: Array<{ key: string }> }).instances.map((v) => v.key), ['app:carol'], 'the relayed tenant scope holds');
    assert.equal((await apiCall(home.kernel, 'GET', '/api/instances', { [API_HEADER]: genuine })).status, 403, 'a replay is refused');
    // The audit log of the owner names the relaying node.
    const audit = JSON.parse((await apiCall(home.kernel, 'GET', '/api/audit', { authorization: `Bearer ${admin(home)}` })).body) as { entries: Array<{ actor: string; action: string; target: string | null }> };
    assert.ok(audit.entries.some((e) => e.target === 'app:carol' && e.actor.includes(`via ${away.id}`)), JSON.stringify(audit.entries.slice(0, 5)));
  });

  test('logs, their live stream, history and weight of an instance placed elsewhere come from its owner; a tenant reads only its own', async (t) => {
    const home = owner('app', 'dave');
    const away = other(home);
    const auth = { authorization: `Bearer ${admin(away)}` };
    assert.equal((await reach(away, 'dave.app.localhost', '/say/owner-line-1')).status, 200);
    const base = '/api/fleet/instances/app/dave';
    // Stored lines: the owner's (the stand-in on `away` prints nothing).
    await waitFor(async () => (await apiCall(away.kernel, 'GET', `${base}/logs?search=owner-line-1`, auth)).body.includes('owner-line-1'), 'the owner\'s line relayed', 15_000);
    const history = await apiCall(away.kernel, 'GET', `${base}/history`, auth);
    assert.equal(history.status, 200, history.body);
    assert.ok(Array.isArray((JSON.parse(history.body) as { points: unknown[] }).points));

    // The live stream: a line printed on the owner after the stream opened arrives through `away`.
    const abort = new AbortController();
    t.after(() => abort.abort());
    const stream = await fetch(`${away.kernel.url}${base}/logs/stream`, { headers: auth, signal: abort.signal });
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = stream.body!.getReader();
    let seen = '';
    const live = (async () => {
      while (!seen.includes('owner-line-live')) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += new TextDecoder().decode(value);
      }
    })();
    await waitFor(async () => {
      await reach(away, 'dave.app.localhost', '/say/owner-line-live');
      return seen.includes('owner-line-live');
    }, 'the live line relayed', 15_000);
    abort.abort();
    await live.catch(() => undefined);

    // Weight: set on the owner.
    const weighed = await apiCall(away.kernel, 'PUT', `${base}/weight`, auth, { weight: 7 });
    assert.equal(weighed.status, 200, weighed.body);
    assert.equal(home.kernel.instances.get('app', 'dave')!.weight, 7, 'the owner\'s instance');
    for (const bad of [{ weight: 101 }, { weight: -1 }, { weight: 'x' }, { weight: 1, extra: 1 }]) {
      assert.equal((await apiCall(away.kernel, 'PUT', `${base}/weight`, auth, bad)).status, 400, JSON.stringify(bad));
    }
    assert.equal(home.kernel.instances.get('app', 'dave')!.weight, 7);

    // A tenant: its own instance's lines; another tenant's instance answers as a missing one, on every route.
    const made = await apiCall(away.kernel, 'POST', '/api/tokens', auth, { name: 'erin', tenant: 'erin' });
    const { token } = JSON.parse(made.body) as { token: string };
    const erin = { authorization: `Bearer ${token}` };
    for (const [method, target] of [['GET', `${base}/logs`], ['GET', `${base}/logs/stream`], ['GET', `${base}/history`], ['PUT', `${base}/weight`], ['GET', '/api/fleet/instances/app/__proto__/logs'], ['GET', '/api/fleet/instances/app/nobody/history']] as const) {
      const reply = await apiCall(away.kernel, method, target, erin, method === 'PUT' ? { weight: 1 } : undefined);
      assert.ok(reply.status === 404 || reply.status === 400, `${method} ${target}: ${reply.status} ${reply.body}`);
      assert.doesNotMatch(reply.body, /owner-line/);
    }
    assert.equal(home.kernel.instances.get('app', 'dave')!.weight, 7, 'a tenant did not change another\'s weight');
    const own = await apiCall(away.kernel, 'GET', '/api/fleet/instances/app/erin/logs', erin);
    assert.equal(own.status, 200, own.body);
    // A hostile query key is refused here, before anything is relayed.
    assert.equal((await apiCall(away.kernel, 'GET', `${base}/logs?service=other`, auth)).status, 400);
  });

  test('the dashboard shows both nodes\' instances and the nodes, and acts on a remote instance and node', { skip: browserSkip ?? (existsSync(DIST_INDEX) ? false : 'the dashboard is not built (npm run build:dashboard)') }, async (t) => {
    const [r1] = nodes as [TestNode, TestNode];
    const remote = ['dave', 'erin', 'bob', 'alice'].find((id) => owner('app', id) !== r1);
    assert.ok(remote, 'an instance placed on r2');
    const remoteNode = owner('app', remote);
    const browser = await launchChromium();
    t.after(() => browser.close());
    const context = await browser.newContext();
    const console = watchConsole(context);
    const page = await context.newPage();
    const url = `http://localhost:${new URL(r1.kernel.url).port}`;
    await signIn(page, url, admin(r1));
    const row = page.locator(`tr[data-key="app:${remote}"]`);
    await row.waitFor({ timeout: 30_000 });
    assert.equal((await row.locator('[data-col="node"]').textContent())?.trim(), remoteNode.id);
    await waitFor(async () => (await rowState(page, `app:${remote}`)) === 'running', 'the remote row running', 30_000);
    // The node filter shows one node's instances.
    await page.getByTestId('node-filter').selectOption(remoteNode.id);
    const nodesShown = await page.locator('tbody tr[data-key] [data-col="node"]').allTextContents();
    assert.ok(nodesShown.length > 0 && nodesShown.every((n) => n.trim() === remoteNode.id), nodesShown.join(','));
    await page.getByRole('button', { name: `Hibernate app:${remote}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Hibernate' }).click();
    await waitFor(() => remoteNode.kernel.instances.get('app', remote)!.state === 'hibernated', 'hibernated on its owner', 30_000);
    await waitFor(async () => (await rowState(page, `app:${remote}`)) === 'hibernated', 'the row hibernated', 30_000);
    await screenshot(page, 'fleet-instances');

    await page.goto(`${url}/#/fleet`);
    const nodeRow = page.locator(`tr[data-node="${remoteNode.id}"]`);
    await nodeRow.waitFor({ timeout: 30_000 });
    assert.match((await nodeRow.textContent()) ?? '', /active/);
    await page.getByRole('button', { name: `Cordon ${remoteNode.id}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cordon' }).click();
    await waitFor(() => r1.fleet.state.node(remoteNode.id)?.state === 'cordoned', 'cordoned', 15_000);
    await waitFor(async () => /cordoned/.test((await nodeRow.textContent()) ?? ''), 'the row cordoned', 15_000);
    await page.getByRole('button', { name: `Uncordon ${remoteNode.id}` }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Uncordon' }).click();
    await waitFor(() => r1.fleet.state.node(remoteNode.id)?.state === 'active', 'active again', 15_000);
    await screenshot(page, 'fleet-nodes');

    // The remote instance's page: its owner's log lines (live tail, then a search) and a weight set on its owner.
    assert.equal((await reach(r1, `${remote}.app.localhost`, '/say/shown-from-the-owner')).status, 200);
    await page.goto(`${url}/#/instances/app/${remote}`);
    await page.getByRole('heading', { name: `app:${remote}` }).waitFor({ timeout: 30_000 });
    assert.equal((await page.getByTestId('node').textContent())?.trim(), remoteNode.id);
    const logBox = page.getByTestId('logs');
    await waitFor(async () => ((await logBox.textContent()) ?? '').includes('shown-from-the-owner'), "the owner's line in the tail", 30_000);
    await page.getByTestId('log-search').fill('shown');
    await page.getByRole('button', { name: 'Search', exact: true }).click();
    await waitFor(async () => /1 stored lines matching/.test((await page.getByTestId('log-mode').textContent()) ?? ''), 'the relayed search answer', 30_000);
    await page.getByRole('button', { name: `Set the weight of app:${remote}` }).click();
    await page.getByTestId('dialog').getByLabel('Weight').fill('33');
    await page.getByTestId('dialog').getByRole('button', { name: 'Save' }).click();
    await waitFor(() => remoteNode.kernel.instances.get('app', remote)!.weight === 33, 'the weight set on the owner', 30_000);
    await waitFor(async () => (await page.getByTestId('weight').textContent())?.trim() === '33', 'the page shows the weight', 30_000);
    await screenshot(page, 'fleet-instance-page');

    // A tenant session on r1 sees its own instance, which lives on r2 or r1, and nothing else; no node admin.
    const made = await apiCall(r1.kernel, 'POST', '/api/tokens', { authorization: `Bearer ${admin(r1)}` }, { name: remote, tenant: remote });
    const { token } = JSON.parse(made.body) as { token: string };
    const tenantContext = await browser.newContext();
    const tenantConsole = watchConsole(tenantContext);
    const tenantPage = await tenantContext.newPage();
    await signIn(tenantPage, url, token);
    await tenantPage.locator(`tr[data-key="app:${remote}"]`).waitFor({ timeout: 30_000 });
    assert.deepEqual(await tenantPage.locator('tbody tr[data-key]').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-key'))), [`app:${remote}`]);
    assert.equal(await tenantPage.getByRole('link', { name: 'Nodes' }).count(), 0);
    assertNoConsoleProblems([...console.problems, ...tenantConsole.problems]);
  });
});
