// Deploys (POST /api/deploy) and traffic swaps (POST /api/route): a new version beside the old one at weight 0
// gets no traffic, a swap moves all of it at once, a failed deploy is rolled back, and a whole
// deploy + swap + removal under load loses no request.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { ConfigInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import type { ApiInstanceView as InstanceView } from '../../plugins/instances-api/view.ts';
import { ADMIN, staticAuth } from '../fixtures/static-auth.ts';
import { ECHO_APP, alive, echoService, request, servePlugins, waitFor, type Reply } from '../helpers.ts';

const plugins = [...servePlugins, staticAuth, instancesApi];

async function deployKernel(t: TestContext, config: ConfigInput): Promise<TestKernel> {
  const kernel = await createTestKernel({ plugins, config: { ...config, settings: { healthInterval: '1h', ...config.settings } } });
  t.after(() => kernel.close());
  return kernel;
}

function admin(kernel: TestKernel, method: string, url: string, body?: unknown): Promise<Reply> {
  return request(kernel, 'localhost', url, {
    method,
    headers: body === undefined ? ADMIN : { ...ADMIN, 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

type Json = Record<string, unknown> & { error?: { code: string; message: string; lastError?: string | null; logs?: string[] } };
const parse = (reply: Reply): Json => JSON.parse(reply.body) as Json;

/** Which instance answered each of `n` requests to the service's shared host, as counts per instance key. */
async function spread(kernel: TestKernel, host: string, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const reply = await request(kernel, host, '/echo');
    assert.equal(reply.status, 200, reply.body);
    const key = String(reply.headers['x-instance']);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

async function running(kernel: TestKernel, ...keys: string[]): Promise<void> {
  await waitFor(() => keys.every((key) => kernel.instances.getByKey(key)?.state === 'running'), `${keys.join(', ')} running`, 20_000);
}

test('a weight-0 deploy gets no traffic; a route swap moves all of it; the old version stays reachable by name', { timeout: 120_000 }, async (t) => {
  const kernel = await deployKernel(t, { services: { web: echoService(), solo: echoService() }, instances: { web: ['v1'] } });
  await running(kernel, 'web:v1');

  const deployed = await admin(kernel, 'POST', '/api/deploy', { service: 'web', version: 'v2' });
  assert.equal(deployed.status, 201, deployed.body);
  const v2 = parse(deployed) as unknown as InstanceView;
  assert.equal(v2.key, 'web:v2');
  assert.equal(v2.state, 'running');
  assert.equal(v2.weight, 0, 'a service with a running instance gets its new version at weight 0 by default');
  assert.ok(alive(v2.pid!));

  assert.deepEqual(await spread(kernel, 'web.localhost', 40), { 'web:v1': 40 });
  const direct = await request(kernel, 'v2.web.localhost', '/echo');
  assert.equal(direct.headers['x-instance'], 'web:v2', 'the new version can be tried by name before it gets traffic');

  const again = await admin(kernel, 'POST', '/api/deploy', { service: 'web', version: 'v2' });
  assert.equal(again.status, 409);
  assert.equal(parse(again).error?.code, 'TNM_ERR_CONFLICT');

  const swapped = await admin(kernel, 'POST', '/api/route', { service: 'web', from: 'v1', to: 'v2' });
  assert.equal(swapped.status, 200, swapped.body);
  const views = parse(swapped) as unknown as { from: InstanceView; to: InstanceView };
  assert.deepEqual([views.from.key, views.from.weight, views.to.key, views.to.weight], ['web:v1', 0, 'web:v2', 100]);
  assert.deepEqual(await spread(kernel, 'web.localhost', 40), { 'web:v2': 40 });
  assert.deepEqual(await spread(kernel, 'v1.web.localhost', 5), { 'web:v1': 5 }, 'v1 still answers by name');
  const stored = new Map(kernel.store.listInstances().map((row) => [`${row.service}:${row.id}`, row.weight]));
  assert.equal(stored.get('web:v1'), 0, 'weights are persisted');
  assert.equal(stored.get('web:v2'), 100);

  // A swap needs both instances, and traffic only moves to one that runs.
  const missing = await admin(kernel, 'POST', '/api/route', { service: 'web', from: 'v2', to: 'v9' });
  assert.equal(missing.status, 404);
  assert.equal(parse(missing).error?.code, 'TNM_ERR_UNKNOWN_INSTANCE');
  assert.equal((await admin(kernel, 'POST', '/api/route', { service: 'nope', from: 'v1', to: 'v2' })).status, 404);
  assert.equal((await admin(kernel, 'POST', '/api/route', { service: 'web', from: 'v2', to: 'v2' })).status, 400);
  assert.equal((await admin(kernel, 'POST', '/api/instances/web/v1/hibernate')).status, 200);
  const asleep = await admin(kernel, 'POST', '/api/route', { service: 'web', from: 'v2', to: 'v1' });
  assert.equal(asleep.status, 409);
  assert.equal(parse(asleep).error?.code, 'TNM_ERR_CONFLICT');
  assert.equal(kernel.instances.get('web', 'v2')!.weight, 100, 'a refused swap changes nothing');

  // The first version of a service with nothing running gets the traffic at once.
  const first = await admin(kernel, 'POST', '/api/deploy', { service: 'solo', version: 'v1' });
  assert.equal(first.status, 201);
  assert.equal((parse(first) as unknown as InstanceView).weight, 100);
  assert.deepEqual(await spread(kernel, 'solo.localhost', 3), { 'solo:v1': 3 });

  const unknown = await admin(kernel, 'POST', '/api/deploy', { service: 'nope', version: 'v1' });
  assert.equal(unknown.status, 404);
  const invalid = await admin(kernel, 'POST', '/api/deploy', { service: 'web', version: 'V_3', weight: 101, timeout: 'soon' });
  assert.equal(invalid.status, 400);
  assert.match(parse(invalid).error!.message, /body\.version.*body\.weight.*body\.timeout/);
});

test('a deploy that fails is rolled back with the reason; the old version keeps all the traffic', { timeout: 120_000 }, async (t) => {
  // Version "broken" exits at start-up, as an app missing its configuration would; every other version is the echo app.
  const script = `if [ "$TENEMENT_INSTANCE" = broken ]; then echo "boot: DATABASE_URL is not set" >&2; exit 3; fi; exec node ${ECHO_APP}`;
  const kernel = await deployKernel(t, {
    services: { web: { command: 'sh', args: ['-c', script], health: '/health', startupTimeout: '5s' } },
    instances: { web: ['v1'] },
  });
  await running(kernel, 'web:v1');

  const exited = await admin(kernel, 'POST', '/api/deploy', { service: 'web', version: 'broken', weight: 50 });
  assert.equal(exited.status, 502, exited.body);
  const error = parse(exited).error!;
  assert.equal(error.code, 'TNM_ERR_DEPLOY_FAILED');
  assert.match(error.message, /web:broken.*exited with code 3/);
  assert.match(String(error.lastError), /exited with code 3/);
  assert.ok(error.logs!.some((line) => line.includes('DATABASE_URL is not set')), error.logs!.join('\n'));

  // Version "sick" runs but its health check fails (the fixture answers 500 while this file exists).
  const sickDir = kernel.instanceDir('web', 'sick');
  mkdirSync(sickDir, { recursive: true });
  writeFileSync(path.join(sickDir, 'unhealthy'), '');
  const sick = await admin(kernel, 'POST', '/api/deploy', { service: 'web', version: 'sick', weight: 50, timeout: '1s' });
  assert.equal(sick.status, 504, sick.body);
  assert.equal(parse(sick).error?.code, 'TNM_ERR_DEPLOY_TIMEOUT');
  assert.match(parse(sick).error!.message, /deploy timeout/);

  for (const version of ['broken', 'sick']) {
    assert.equal(kernel.instances.get('web', version), undefined, `no ${version} instance is left`);
    assert.equal((await admin(kernel, 'GET', `/api/instances/web/${version}`)).status, 404);
    assert.ok(!kernel.store.listInstances().some((row) => row.id === version), `${version} is not in the store`);
  }
  assert.deepEqual(await spread(kernel, 'web.localhost', 20), { 'web:v1': 20 });

  type Entry = { action: string; target: string; status: number; detail: string };
  const audit = parse(await admin(kernel, 'GET', '/api/audit')).entries as Entry[];
  assert.deepEqual(audit.map((e) => [e.action, e.target, e.status]), [
    ['POST /api/deploy', 'web:sick', 504],
    ['POST /api/deploy', 'web:broken', 502],
  ]);
  assert.match(audit[1]!.detail, /exited with code 3/);
});

test('deploy, swap and remove the old version under load: every request is answered 200', { timeout: 180_000 }, async (t) => {
  const kernel = await deployKernel(t, { services: { web: echoService() }, instances: { web: ['v1'] } });
  await running(kernel, 'web:v1');

  // Four workers send requests to the service's shared host, one after another each, for the whole change.
  const answers: Array<{ status: number; instance: string; phase: string }> = [];
  let phase = 'before';
  let stop = false;
  // A bound, not a target: the slow request alone lasts 1.5 s, in which fast workers may answer thousands.
  const MAX = 20_000;
  const worker = async (): Promise<void> => {
    while (!stop && answers.length < MAX) {
      const asked = phase;
      const reply = await request(kernel, 'web.localhost', '/echo').catch((error: Error): Reply => ({ status: 0, headers: {}, body: error.message }));
      answers.push({ status: reply.status, instance: String(reply.headers['x-instance'] ?? reply.body), phase: asked });
    }
  };
  const workers = Promise.all([worker(), worker(), worker(), worker()]);
  const served = (n: number): Promise<void> => {
    const target = answers.length + n;
    return waitFor(() => answers.length >= target || answers.length >= MAX, `${n} more answers`, 60_000);
  };

  try {
    await served(40);
    phase = 'deploy';
    const deployed = await admin(kernel, 'POST', '/api/deploy', { service: 'web', version: 'v2' });
    assert.equal(deployed.status, 201, deployed.body);
    await served(40);

    phase = 'swap';
    assert.equal((await admin(kernel, 'POST', '/api/route', { service: 'web', from: 'v1', to: 'v2' })).status, 200);
    await served(40);

    // A slow request on v1, in flight when its removal starts: the removal drains it before stopping v1.
    phase = 'remove';
    const v1 = kernel.instances.get('web', 'v1')!;
    const order: string[] = [];
    const slow = request(kernel, 'v1.web.localhost', '/slow?ms=1500').then((reply) => {
      order.push('slow answered');
      return reply;
    });
    await waitFor(() => v1.inFlight > 0, 'the slow request to be in flight on v1');
    const removed = await admin(kernel, 'DELETE', '/api/instances/web/v1');
    order.push('v1 removed');
    assert.equal(removed.status, 200);
    const slowReply = await slow;
    assert.equal(slowReply.status, 200);
    assert.equal(slowReply.body, 'slow');
    assert.deepEqual(order, ['slow answered', 'v1 removed'], 'v1 was stopped only after its in-flight request finished');

    phase = 'after';
    await served(40);
  } finally {
    stop = true;
    await workers;
  }

  t.diagnostic(`${answers.length} requests under load`);
  const failed = answers.filter((a) => a.status !== 200);
  assert.deepEqual(failed, [], 'no request was lost');
  assert.ok(answers.length >= 160, `${answers.length} requests`);
  const byPhase = (name: string): Set<string> => new Set(answers.filter((a) => a.phase === name).map((a) => a.instance));
  assert.deepEqual(byPhase('before'), new Set(['web:v1']));
  assert.deepEqual(byPhase('deploy'), new Set(['web:v1']), 'the weight-0 version got nothing');
  assert.deepEqual(byPhase('after'), new Set(['web:v2']));
  assert.deepEqual(
    kernel.instances.list().map((i) => [i.key, i.weight, i.state]),
    [['web:v2', 100, 'running']],
  );
});
