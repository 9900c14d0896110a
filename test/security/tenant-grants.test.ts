// Tenant tokens act on their own instances only (issue 18, item 9): before, alice's token created `web:alice`,
// which joined web's weighted pool at weight 100 and took about half of web.localhost's traffic; tenant tokens
// could also set any weight. Now creating needs the admin token or `tenants.create`, and a weight above 0 needs
// `tenants.maxWeight`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import { apiCall, echoService, request, servePlugins, waitFor, type Reply } from '../helpers.ts';

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
const code = (reply: Reply): string | undefined => (JSON.parse(reply.body) as { error?: { code: string } }).error?.code;

async function grantKernel(t: TestContext, web: ServiceInput): Promise<{ kernel: TestKernel; admin: Record<string, string>; alice: Record<string, string> }> {
  const kernel = await createTestKernel({
    plugins: [...servePlugins, authBearer, instancesApi],
    config: { settings: { healthInterval: '1h' }, services: { web }, instances: { web: ['v1'] } },
  });
  t.after(() => kernel.close());
  await waitFor(() => kernel.instances.get('web', 'v1')?.state === 'running', 'web:v1 running', 30_000);
  const admin = bearer(readFileSync(path.join(kernel.config.settings.dataDir, 'admin.token'), 'utf8').trim());
  const made = await apiCall(kernel, 'POST', '/api/tokens', admin, { name: 'alice', tenant: 'alice' });
  assert.equal(made.status, 201, made.body);
  return { kernel, admin, alice: bearer((JSON.parse(made.body) as { token: string }).token) };
}

/** Which instance served each of `n` requests to web.localhost. */
async function spread(kernel: TestKernel, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const reply = await request(kernel, 'web.localhost', '/echo');
    assert.equal(reply.status, 200, reply.body);
    const key = String(reply.headers['x-instance']);
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

test('without a grant, a tenant token cannot create its instance, nor set a weight; web.localhost traffic stays where the operator put it', { timeout: 90_000 }, async (t) => {
  const { kernel, admin, alice } = await grantKernel(t, echoService());
  const created = await apiCall(kernel, 'POST', '/api/instances/web/alice', alice);
  assert.equal(created.status, 403, created.body);
  assert.equal(code(created), 'TNM_ERR_FORBIDDEN');
  assert.equal(kernel.instances.get('web', 'alice'), undefined, 'nothing created');
  assert.ok(!kernel.store.listInstances().some((row) => row.id === 'alice'), 'nothing persisted');
  assert.deepEqual(await spread(kernel, 30), { 'web:v1': 30 });

  // The operator creates it; alice may then act on it (start, restart, hibernate) but not weigh it.
  assert.equal((await apiCall(kernel, 'POST', '/api/instances/web/alice', admin)).status, 201);
  assert.equal((await apiCall(kernel, 'POST', '/api/instances/web/alice/restart', alice)).status, 200);
  for (const weight of [0, 1, 100]) {
    const set = await apiCall(kernel, 'PUT', '/api/instances/web/alice/weight', alice, { weight });
    assert.equal(set.status, 403, `weight ${weight}: ${set.body}`);
    assert.equal(code(set), 'TNM_ERR_FORBIDDEN');
  }
  assert.equal(kernel.instances.get('web', 'alice')!.weight, 100, 'the operator’s weight stands');
  assert.equal((await apiCall(kernel, 'PUT', '/api/instances/web/alice/weight', admin, { weight: 0 })).status, 200);
  assert.deepEqual(await spread(kernel, 20), { 'web:v1': 20 });
  // Deploys and traffic swaps stay admin-only.
  assert.equal((await apiCall(kernel, 'POST', '/api/route', alice, { service: 'web', from: 'v1', to: 'alice' })).status, 403);
  assert.equal((await apiCall(kernel, 'POST', '/api/deploy', alice, { service: 'web', version: 'alice' })).status, 403);
});

test('tenants.create lets a tenant create its own instance, out of the weighted pool unless tenants.maxWeight allows, and weights only up to it', { timeout: 90_000 }, async (t) => {
  const closed = await grantKernel(t, echoService({ tenants: { create: true } }));
  const made = await apiCall(closed.kernel, 'POST', '/api/instances/web/alice', closed.alice);
  assert.equal(made.status, 201, made.body);
  assert.equal((JSON.parse(made.body) as { weight: number }).weight, 0);
  assert.equal((await request(closed.kernel, 'alice.web.localhost', '/echo')).status, 200, 'reached on its own host');
  assert.deepEqual(await spread(closed.kernel, 30), { 'web:v1': 30 }, 'never in web.localhost traffic');
  // Another tenant's id is still a 404.
  assert.equal((await apiCall(closed.kernel, 'POST', '/api/instances/web/bob', closed.alice)).status, 404);

  const open = await grantKernel(t, echoService({ weight: 100, tenants: { create: true, maxWeight: 10 } }));
  const joined = await apiCall(open.kernel, 'POST', '/api/instances/web/alice', open.alice);
  assert.equal(joined.status, 201, joined.body);
  assert.equal((JSON.parse(joined.body) as { weight: number }).weight, 10, 'min(weight, tenants.maxWeight)');
  assert.equal((await apiCall(open.kernel, 'PUT', '/api/instances/web/alice/weight', open.alice, { weight: 5 })).status, 200);
  const above = await apiCall(open.kernel, 'PUT', '/api/instances/web/alice/weight', open.alice, { weight: 11 });
  assert.equal(above.status, 403);
  assert.match(JSON.parse(above.body).error.message, /up to 10/);
  assert.equal(open.kernel.instances.get('web', 'alice')!.weight, 5);
  // The admin is not bound by the grant.
  assert.equal((await apiCall(open.kernel, 'PUT', '/api/instances/web/alice/weight', open.admin, { weight: 60 })).status, 200);
});
