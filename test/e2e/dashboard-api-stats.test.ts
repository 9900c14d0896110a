// The dashboard's statistics (plugins/dashboard, docs/dashboard.md) over real HTTP against a kernel with real
// instances: an instance's history of request rate, latency and memory, the plugins' calls per hook, and the wasm
// functions' invocations and durations (tenant-scoped), with real C guests built by clang.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import type { PluginEntry } from '../../core/plugin.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import dashboard from '../../plugins/dashboard/index.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import { apiCall, echoService, request, servePlugins } from '../helpers.ts';
import { buildCGuests, wasmFunction } from '../wasm-guests.ts';
import { adminToken, bearer, dashKernel, fakeBuild, parse, running, signIn, tenantToken, type Json } from './dashboard-api-fixture.ts';

test('the history has request rate, latency and memory points after some traffic', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice'] } });
  await running(kernel, 'echo:alice');
  for (let i = 0; i < 20; i++) assert.equal((await request(kernel, 'alice.echo.localhost', '/echo')).status, 200);
  const signed = await signIn(kernel, adminToken(kernel));
  const reply = await apiCall(kernel, 'GET', '/api/instances/echo/alice/history', { cookie: signed.cookie });
  assert.equal(reply.status, 200, reply.body);
  const history = parse(reply) as { step: number; points: Json[] };
  assert.equal(history.step, 10);
  assert.ok(history.points.length >= 1 && history.points.length <= 360);
  const requests = history.points.reduce((sum, p) => sum + (p.rps as number), 0);
  assert.ok(requests > 0, JSON.stringify(history.points));
  const last = history.points.at(-1)!;
  assert.equal(typeof last.t, 'number');
  assert.ok(last.t % 10_000 === 0);
  const withLatency = history.points.filter((p) => p.p50 !== null);
  assert.ok(withLatency.length > 0);
  for (const p of withLatency) assert.ok(p.p50 > 0 && p.p50 <= p.p95 && p.p95 <= p.p99, JSON.stringify(p));
  assert.ok((last.memory as number) > 1_000_000, `memory: ${last.memory}`);
  // The plugins view: each kernel plugin's calls per hook (the dashboard's own request tap saw the 20 requests).
  const listed = parse(await apiCall(kernel, 'GET', '/api/plugins', { cookie: signed.cookie }));
  const own = (listed.plugins as Json[]).find((p) => p.name === 'dashboard')!;
  assert.ok(own.calls.request.calls >= 20, JSON.stringify(own));
  assert.equal(own.calls.request.errors, 0);
  // The router's route tap ran at least for the first request; the data plane's route cache answers the rest
  // of one host's requests without the hook (core/dataplane/route-cache.ts).
  const router = (listed.plugins as Json[]).find((p) => p.name === 'router')!;
  assert.ok(router.calls.route.calls >= 1, JSON.stringify(router));
  for (const url of ['/api/instances/echo/nobody/history', '/api/instances/__proto__/alice/history', '/api/instances/echo/constructor/history']) {
    const missing = await apiCall(kernel, 'GET', url, { cookie: signed.cookie });
    assert.ok([400, 404].includes(missing.status), `${url}: ${missing.status}`);
  }
});

test('wasm function stats answer empty lists when no wasm service runs, and need a token', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() } });
  assert.equal((await apiCall(kernel, 'GET', '/api/functions', {})).status, 401);
  const reply = await apiCall(kernel, 'GET', '/api/functions', bearer(adminToken(kernel)));
  assert.equal(reply.status, 200);
  assert.deepEqual(parse(reply), { functions: [], services: [] });
});

const guestsDir = mkdtempSync(path.join(os.tmpdir(), 'tnm-dash-wasm-'));
const guests = buildCGuests(guestsDir);
test.after(() => rmSync(guestsDir, { recursive: true, force: true }));

test('wasm function stats: invocations, timeouts per instance (tenant-scoped), duration percentiles per service for admins', { timeout: 90_000, skip: guests.skip }, async (t) => {
  const plugins: PluginEntry[] = [...servePlugins, wasmRuntime, authBearer, instancesApi, [dashboard, { distDir: fakeBuild() }]];
  const kernel = await createTestKernel({
    plugins,
    config: { services: { hello: wasmFunction(guests.handler), spin: wasmFunction(guests.guest, { wasm: { timeout: '300ms' } }) } },
  });
  t.after(() => kernel.close());
  for (let i = 0; i < 3; i++) assert.equal((await request(kernel, 'alice.hello.localhost', '/')).status, 200);
  assert.equal((await request(kernel, 'bob.hello.localhost', '/')).status, 200);
  assert.equal((await request(kernel, 'alice.spin.localhost', '/loop')).status, 504);

  const admin = parse(await apiCall(kernel, 'GET', '/api/functions', bearer(adminToken(kernel))));
  const byKey = new Map((admin.functions as Json[]).map((f) => [f.key as string, f]));
  assert.deepEqual([...byKey.keys()], ['hello:alice', 'hello:bob', 'spin:alice']);
  assert.equal(byKey.get('hello:alice')!.invocations, 3);
  assert.equal(byKey.get('hello:alice')!.ok, 3);
  assert.equal(byKey.get('spin:alice')!.timeouts, 1);
  assert.equal(byKey.get('spin:alice')!.outcomes.timeout, 1);
  const hello = (admin.services as Json[]).find((s) => s.service === 'hello')!;
  assert.equal(hello.count, 4);
  assert.ok(hello.p50 > 0 && hello.p50 <= hello.p99 && hello.meanMs > 0, JSON.stringify(hello));

  const bob = await signIn(kernel, (await tenantToken(kernel, 'bob')).token);
  const scoped = parse(await apiCall(kernel, 'GET', '/api/functions', { cookie: bob.cookie }));
  assert.deepEqual((scoped.functions as Json[]).map((f) => f.key), ['hello:bob']);
  assert.deepEqual(scoped.services, []);
});
