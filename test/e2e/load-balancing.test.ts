// Load balancing of `{service}.{domain}` (core/dataplane/balance.ts, docs/lb.md): `lb: 'least-requests'` and
// `'p2c'` against `'weighted'` with one instance slowed (a backend that sleeps), weights under p2c, readiness,
// in-flight counts after aborted requests on every path, proxy workers balancing with their own counts, and
// hostile names. Real instances (test/fixtures/lb-app.mjs), real sockets; assertions on counts, never on time.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { resolveConfig } from '../../core/config/loader.ts';
import type { ServiceInput } from '../../core/config/schema.ts';
import { balance } from '../../core/dataplane/balance.ts';
import type { Instance, InstanceView } from '../../core/instance.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import { FIXTURES, recordEvents, request, servePlugins, waitFor } from '../helpers.ts';
import { manyRequests, showTally, tally } from '../spread.ts';

/** `total` requests to `host`, `parallel` at a time, each given a minute (a slowed instance answers late). */
const many = (kernel: TestKernel, host: string, total: number, parallel: number) => manyRequests(kernel, host, total, { parallel, timeoutMs: 60_000 });

const LB_APP = path.join(FIXTURES, 'lb-app.mjs');
const TIMEOUT = 180_000;
/** The slowed instance's delay: far above a proxied request's time on a loaded machine, so counts tell. */
const SLOW_MS = 800;

function lbService(lb: 'weighted' | 'least-requests' | 'p2c', overrides: Partial<ServiceInput> = {}): ServiceInput {
  return { command: `node ${LB_APP}`, health: '/health', lb, env: { LB_SLOW: 'slow', LB_SLOW_MS: String(SLOW_MS) }, ...overrides };
}

/** A kernel stopped (and its folder removed) when the test ends. */
async function lbKernel(t: TestContext, config: Parameters<typeof createTestKernel>[0]['config']): Promise<TestKernel> {
  const kernel = await createTestKernel({ plugins: servePlugins, config });
  t.after(() => kernel.close());
  return kernel;
}

async function running(kernel: TestKernel, service: string, id: string): Promise<Instance> {
  const instance = await kernel.spawnInstance(service, id);
  assert.equal(instance.state, 'running', `${instance.key} did not start: ${instance.lastError}`);
  return instance;
}

/** Opens a request on a raw connection and leaves it waiting (the instance sleeps); resolves once it is sent. */
function hangingRequest(kernel: TestKernel, raw: string, t: TestContext): Promise<net.Socket> {
  const { hostname, port } = new URL(kernel.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: hostname, port: Number(port) }, () => {
      socket.write(raw);
      resolve(socket);
    });
    socket.on('error', () => undefined);
    socket.once('error', reject);
    t.after(() => socket.destroy());
  });
}

const inFlightOf = (instances: readonly Instance[]): number => instances.reduce((sum, i) => sum + i.inFlight, 0);

test('least-requests and p2c send a slowed instance measurably fewer requests than weighted', { timeout: TIMEOUT }, async (t) => {
  const kernel = await lbKernel(t, { services: { w: lbService('weighted'), lr: lbService('least-requests'), p: lbService('p2c') } });
  for (const service of ['w', 'lr', 'p']) for (const id of ['a', 'b', 'slow']) await running(kernel, service, id);
  // 90 requests, 6 at a time; weighted sends the slowed instance a third of them whatever its delay.
  const weighted = tally(await many(kernel, 'w.localhost', 90, 6));
  const leastRequests = tally(await many(kernel, 'lr.localhost', 90, 6));
  const p2c = tally(await many(kernel, 'p.localhost', 90, 6));
  for (const [name, counts, service] of [['weighted', weighted, 'w'], ['least-requests', leastRequests, 'lr'], ['p2c', p2c, 'p']] as const) {
    const served = (counts.get(`${service}:a`) ?? 0) + (counts.get(`${service}:b`) ?? 0) + (counts.get(`${service}:slow`) ?? 0);
    assert.equal(served, 90, `${name}: every request answered by one of the three: ${showTally(counts)}`);
  }
  const slowWeighted = weighted.get('w:slow') ?? 0;
  const slowLeast = leastRequests.get('lr:slow') ?? 0;
  const slowP2c = p2c.get('p:slow') ?? 0;
  t.diagnostic(`slowed instance's requests of 90: weighted ${slowWeighted}, least-requests ${slowLeast}, p2c ${slowP2c}`);
  // Expected 30 (binomial, sd 4.5): the slowed instance does get its share under weighted.
  assert.ok(slowWeighted >= 15, `weighted gave the slowed instance ${slowWeighted}/90: ${showTally(weighted)}`);
  // Expected a handful each (it holds about two of the six clients for 800 ms at a time); half is generous.
  assert.ok(slowLeast * 2 <= slowWeighted, `least-requests gave it ${slowLeast}, weighted ${slowWeighted}: ${showTally(leastRequests)}`);
  assert.ok(slowP2c * 2 <= slowWeighted, `p2c gave it ${slowP2c}, weighted ${slowWeighted}: ${showTally(p2c)}`);
  // Every request's count was given back.
  await waitFor(() => kernel.instances.list().every((i) => i.inFlight === 0), 'in-flight back to 0', 15_000);
});

test('weights still bias p2c; least-requests breaks ties by weight, then takes turns', { timeout: TIMEOUT }, async (t) => {
  const fast = { env: {} };
  const sleepy = { env: { LB_SLOW: '*', LB_SLOW_MS: '300' } };
  const kernel = await lbKernel(t, {
    services: { p: lbService('p2c', fast), ps: lbService('p2c', sleepy), lr: lbService('least-requests', fast), even: lbService('least-requests', fast) },
  });
  for (const service of ['p', 'ps']) {
    kernel.setWeight(await running(kernel, service, 'heavy'), 90);
    kernel.setWeight(await running(kernel, service, 'light'), 10);
  }
  kernel.setWeight(await running(kernel, 'lr', 'heavy'), 90);
  kernel.setWeight(await running(kernel, 'lr', 'light'), 10);
  for (const id of ['a', 'b', 'c']) await running(kernel, 'even', id);
  // One at a time: nothing is in flight when a request is routed, so every choice is a tie on counts.
  const p2c = tally(await many(kernel, 'p.localhost', 100, 1));
  const heavy = p2c.get('p:heavy') ?? 0;
  const light = p2c.get('p:light') ?? 0;
  assert.equal(heavy + light, 100, showTally(p2c));
  // Idle instances share by weight (expected 90/10).
  assert.ok(heavy >= 75 && light >= 1, `p2c 90/10: ${showTally(p2c)}`);
  // Loaded (both sleep 300 ms, 20 clients): the one with fewer in flight per unit of weight wins, so the light one
  // holds about one in ten of the requests in flight, and (same service time) serves about one in ten.
  const loaded = tally(await many(kernel, 'ps.localhost', 100, 20));
  t.diagnostic(`p2c 90/10: one at a time ${showTally(p2c)}, 20 at a time ${showTally(loaded)}`);
  assert.ok((loaded.get('ps:heavy') ?? 0) >= 70 && (loaded.get('ps:light') ?? 0) >= 1, `p2c 90/10, 20 at a time: ${showTally(loaded)}`);
  // least-requests: a tie on counts goes to the higher weight.
  const lr = tally(await many(kernel, 'lr.localhost', 20, 1));
  assert.deepEqual(Object.fromEntries(lr), { 'lr:heavy': 20 });
  // Equal weights and counts: turns.
  const even = tally(await many(kernel, 'even.localhost', 30, 1));
  assert.deepEqual(Object.fromEntries(even), { 'even:a': 10, 'even:b': 10, 'even:c': 10 });
});

test('an unhealthy instance gets nothing under p2c and least-requests; all asleep still wakes', { timeout: TIMEOUT }, async (t) => {
  // Unhealthy at the first failed check; a long backoff keeps it out of `running` for the rest of the test.
  const sickly = { env: {}, backoff: { base: '10m', max: '10m' } };
  const kernel = await lbKernel(t, {
    settings: { healthInterval: '100ms', unhealthyThreshold: 1 },
    services: { p: lbService('p2c', sickly), lr: lbService('least-requests', sickly), solo: lbService('p2c', { env: {} }) },
  });
  const events = recordEvents(kernel);
  const sick: Instance[] = [];
  for (const service of ['p', 'lr']) {
    await running(kernel, service, 'a');
    await running(kernel, service, 'b');
    sick.push(await running(kernel, service, 'sick'));
  }
  // Healthy, it takes its share (a third, one at a time).
  const before = tally(await many(kernel, 'lr.localhost', 30, 1));
  assert.equal(before.get('lr:sick'), 10, showTally(before));
  for (const instance of sick) writeFileSync(path.join(kernel.instanceDir(instance.service, instance.id), 'unhealthy'), '');
  await waitFor(() => sick.every((i) => events.some((e) => e.instance === i.key && e.type === 'unhealthy')), 'both marked unhealthy', 30_000);
  for (const host of ['p.localhost', 'lr.localhost']) {
    const counts = tally(await many(kernel, host, 60, 3));
    const service = host.split('.')[0]!;
    assert.equal((counts.get(`${service}:a`) ?? 0) + (counts.get(`${service}:b`) ?? 0), 60, `${host}: ${showTally(counts)}`);
  }
  for (const instance of sick) assert.notEqual(instance.state, 'running');

  // None running: the existing wake behaviour (the hibernated instance is woken for the request).
  const solo = await running(kernel, 'solo', 'only');
  await kernel.hibernate(solo);
  const woken = await request(kernel, 'solo.localhost', '/');
  assert.equal(woken.status, 200, woken.body);
  assert.equal(woken.headers['x-instance'], 'solo:only');
});

test('in-flight counts return to 0 after clients abort: fast path, node:http path, mid-body, FIN or reset', { timeout: TIMEOUT }, async (t) => {
  // The instances never answer in time and the request timeout is far away: only the abort can free a count.
  const never = { env: { LB_SLOW: '*', LB_SLOW_MS: '600000' }, requestTimeout: '10m' };
  const kernel = await lbKernel(t, {
    services: { hang: lbService('least-requests', never), old: lbService('least-requests', { ...never, requestTimeout: '2s' }) },
  });
  const both = [await running(kernel, 'hang', 'a'), await running(kernel, 'hang', 'b')];
  const host = 'hang.localhost';
  const cases: Array<[string, string, 'fin' | 'reset']> = [
    // The fast path (raw HTTP/1.1 forwarding): a FIN is probed with an interim 100, which a closed client resets.
    ['fast path, FIN', `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 'fin'],
    ['fast path, reset', `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 'reset'],
    // A body the client never finishes.
    ['fast path mid-body, FIN', `POST / HTTP/1.1\r\nHost: ${host}\r\nContent-Length: 1000\r\n\r\n${'x'.repeat(10)}`, 'fin'],
    // HTTP/1.0 goes to node:http (core/proxy.ts).
    ['node:http path, reset', `GET / HTTP/1.0\r\nHost: ${host}\r\n\r\n`, 'reset'],
  ];
  for (const [name, raw, how] of cases) {
    const sockets: net.Socket[] = [];
    for (let i = 0; i < 6; i++) sockets.push(await hangingRequest(kernel, raw, t));
    // Counted while they wait; least-requests spreads them, three each.
    await waitFor(() => inFlightOf(both) === 6, `${name}: 6 requests in flight (${inFlightOf(both)})`, 15_000);
    assert.deepEqual(both.map((i) => i.inFlight), [3, 3], name);
    for (const socket of sockets) {
      if (how === 'reset') socket.resetAndDestroy();
      else socket.destroy();
    }
    await waitFor(() => inFlightOf(both) === 0, `${name}: in-flight back to 0 after aborts (${both.map((i) => i.inFlight).join(', ')})`, 15_000);
  }
  // An HTTP/1.0 client's FIN may be a half-close, and no interim response can ask (it has no 1xx): its request
  // holds its count until the request timeout, no longer.
  const old = await running(kernel, 'old', 'a');
  const sockets: net.Socket[] = [];
  for (let i = 0; i < 3; i++) sockets.push(await hangingRequest(kernel, `GET / HTTP/1.0\r\nHost: old.localhost\r\n\r\n`, t));
  await waitFor(() => old.inFlight === 3, `3 HTTP/1.0 requests in flight (${old.inFlight})`, 15_000);
  for (const socket of sockets) socket.destroy();
  await waitFor(() => old.inFlight === 0, `HTTP/1.0 in-flight back to 0 by the request timeout (${old.inFlight})`, 30_000);
});

test('proxy workers balance with their own counts: p2c still spares the slowed instance; aborts leave no count', { timeout: TIMEOUT }, async (t) => {
  const kernel = await lbKernel(t, {
    settings: { proxy: { workers: 2, accept: 'spread' } },
    services: { w: lbService('weighted'), p: lbService('p2c'), hang: lbService('p2c', { env: { LB_SLOW: '*', LB_SLOW_MS: '60000' } }) },
  });
  const workers = (): ReturnType<TestKernel['server']['proxyWorkers']> => kernel.server.proxyWorkers();
  assert.equal(workers().pids.length, 1, 'one worker besides the kernel process');
  for (const service of ['w', 'p']) for (const id of ['a', 'b', 'slow']) await running(kernel, service, id);
  const before = workers().requests;
  const weighted = tally(await many(kernel, 'w.localhost', 90, 6));
  const p2c = tally(await many(kernel, 'p.localhost', 90, 6));
  const slowWeighted = weighted.get('w:slow') ?? 0;
  const slowP2c = p2c.get('p:slow') ?? 0;
  t.diagnostic(`with a worker, the slowed instance's requests of 90: weighted ${slowWeighted}, p2c ${slowP2c}`);
  assert.ok(slowWeighted >= 15, `weighted: ${showTally(weighted)}`);
  assert.ok(slowP2c * 2 <= slowWeighted, `p2c gave it ${slowP2c}, weighted ${slowWeighted}: ${showTally(p2c)}`);
  await waitFor(() => workers().requests > before, 'the worker to report requests it served', 10_000);

  const hanging = [await running(kernel, 'hang', 'a'), await running(kernel, 'hang', 'b')];
  const sockets: net.Socket[] = [];
  for (let i = 0; i < 12; i++) sockets.push(await hangingRequest(kernel, `GET / HTTP/1.1\r\nHost: hang.localhost\r\n\r\n`, t));
  // Workers report their counts every 50 ms: the kernel's instances see every one.
  await waitFor(() => inFlightOf(hanging) === 12, `12 in flight (${inFlightOf(hanging)})`, 15_000);
  for (const socket of sockets) socket.destroy();
  await waitFor(() => inFlightOf(hanging) === 0, `in-flight back to 0 (${hanging.map((i) => i.inFlight).join(', ')})`, 15_000);
});

test('a reload switches a service to p2c: the kernel and its proxy worker use the new rule from then on', { timeout: TIMEOUT }, async (t) => {
  const services = { s: lbService('weighted') };
  const kernel = await lbKernel(t, { settings: { proxy: { workers: 2, accept: 'spread' } }, services });
  for (const id of ['a', 'b', 'slow']) await running(kernel, 's', id);
  const before = tally(await many(kernel, 's.localhost', 60, 6));
  assert.ok((before.get('s:slow') ?? 0) >= 8, `weighted first (expected 20 of 60): ${showTally(before)}`);
  const dataDir = kernel.config.settings.dataDir;
  await kernel.reload(resolveConfig({ settings: { dataDir }, services: { s: lbService('p2c') } }, { path: null, dir: process.cwd() }));
  await kernel.server.proxyWorkersSynced();
  const after = tally(await many(kernel, 's.localhost', 90, 6));
  const slow = after.get('s:slow') ?? 0;
  t.diagnostic(`after the reload to p2c, the slowed instance got ${slow} of 90 (weighted: about 30)`);
  assert.ok(slow <= 15, `p2c after the reload gave the slowed instance ${slow} of 90: ${showTally(after)}`);
});

test('lb is validated, naming the field; hostile names cannot break the tables', { timeout: TIMEOUT }, async (t) => {
  const source = { path: null, dir: process.cwd() };
  const config = (lb: unknown): unknown => ({ services: { web: { command: 'node app.js', lb } } });
  assert.equal(resolveConfig({ services: { web: { command: 'node app.js' } } }, source).services.web!.lb, 'weighted');
  assert.equal(resolveConfig(config('p2c'), source).services.web!.lb, 'p2c');
  for (const bad of ['fastest', '__proto__', 'constructor', 'P2C', 1, null, { toString: 'p2c' }]) {
    assert.throws(
      () => resolveConfig(config(bad), source),
      (error: Error & { code?: string }) => error.code === 'TNM_ERR_CONFIG_INVALID' && /services\.web\.lb: expected lb 'weighted'/.test(error.message),
      `lb: ${JSON.stringify(bad)}`,
    );
  }

  // Round-robin turns are kept per service name in a Map: `__proto__` and `constructor` are keys like any other.
  const view = (id: string): InstanceView => ({ key: `svc:${id}`, id, service: '__proto__', state: 'running', weight: 1, inFlight: 0, handle: {} }) as unknown as InstanceView;
  const three = [view('__proto__'), view('constructor'), view('hasOwnProperty')];
  for (const service of ['__proto__', 'constructor', 'hasOwnProperty', 'toString']) {
    const firsts = Array.from({ length: 6 }, () => balance('least-requests', service, three)[0]!.id);
    assert.deepEqual(firsts, ['__proto__', 'constructor', 'hasOwnProperty', '__proto__', 'constructor', 'hasOwnProperty'], service);
  }
  assert.equal(Object.getPrototypeOf({}), Object.prototype);
  assert.equal(({} as Record<string, unknown>).constructor, Object);

  // Through the proxy: a service and instances named like Object's own properties balance like the rest; a
  // host label `__proto__` is not a DNS label (400), and the next request still routes.
  const kernel = await lbKernel(t, { services: { constructor: lbService('least-requests', { env: {} }) } });
  for (const id of ['prototype', 'tostring', 'valueof']) await running(kernel, 'constructor', id);
  const counts = tally(await many(kernel, 'constructor.localhost', 30, 1));
  assert.deepEqual(Object.fromEntries(counts), { 'constructor:prototype': 10, 'constructor:tostring': 10, 'constructor:valueof': 10 });
  for (const host of ['__proto__.localhost', '__proto__.constructor.localhost']) {
    const reply = await request(kernel, host, '/');
    assert.equal(reply.status, 400, `${host}: ${reply.body}`);
  }
  const after = await request(kernel, 'constructor.localhost', '/');
  assert.equal(after.status, 200, after.body);
});
