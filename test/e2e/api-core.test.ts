// The management API's one door (core/api): authentication through the auth hook, lock-out per address,
// admin-only routes, zod validation, audit of mutating calls and the OpenAPI document.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { z } from 'zod';
import { createTestKernel } from '../../core/test-kernel.ts';
import { definePlugin } from '../../sdk/index.ts';
import { requireAccess } from '../../core/api/identity.ts';
import { ADMIN, staticAuth, tenant } from '../fixtures/static-auth.ts';
import { request } from '../helpers.ts';

const widgets = definePlugin({
  name: 'widgets',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    ctx.api.route({
      method: 'POST',
      url: '/api/widgets/:id',
      summary: 'Make a widget',
      access: 'token',
      params: z.strictObject({ id: z.string().regex(/^[a-z]+$/) }),
      body: z.strictObject({ size: z.number().int().min(1), color: z.enum(['red', 'blue']).optional() }),
      handler: ({ identity, params, body, audit, reply }) => {
        audit.target = `widget:${params.id}`;
        audit.instanceId = params.id;
        requireAccess(identity, 'widget', params.id);
        reply.code(201);
        return { id: params.id, size: body.size, by: identity!.name };
      },
    });
    ctx.api.route({
      method: 'DELETE',
      url: '/api/widgets',
      summary: 'Delete every widget',
      access: 'admin',
      handler: () => ({ deleted: true }),
    });
  },
});

const json = (body: string): { error?: { code: string; message: string } } & Record<string, unknown> => JSON.parse(body);

test('routes need a token; the auth hook decides; admins and tenants are told apart', { timeout: 60_000 }, async (t) => {
  const kernel = await createTestKernel({ plugins: [staticAuth, widgets] });
  t.after(() => kernel.close());
  const post = (headers: Record<string, string>, body: unknown = { size: 2 }, id = 'alice') =>
    request(kernel, 'localhost', `/api/widgets/${id}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

  const missing = await post({});
  assert.equal(missing.status, 401);
  assert.equal(json(missing.body).error?.code, 'TNM_ERR_UNAUTHORIZED');
  assert.match(String(missing.headers['www-authenticate']), /Bearer/);
  const wrong = await post({ authorization: 'Static nobody' });
  assert.equal(wrong.status, 401);

  const made = await post(ADMIN);
  assert.equal(made.status, 201);
  assert.deepEqual(json(made.body), { id: 'alice', size: 2, by: 'static:admin' });
  assert.equal((await post(tenant('alice'))).status, 201);
  const other = await post(tenant('bob'));
  assert.equal(other.status, 404, "a tenant cannot see another tenant's things");

  const forbidden = await request(kernel, 'localhost', '/api/widgets', { method: 'DELETE', headers: tenant('alice') });
  assert.equal(forbidden.status, 403);
  assert.equal(json(forbidden.body).error?.code, 'TNM_ERR_FORBIDDEN');
  assert.equal((await request(kernel, 'localhost', '/api/widgets', { method: 'DELETE', headers: ADMIN })).status, 200);
});

test('bodies and params are validated with the field path in a 400', { timeout: 60_000 }, async (t) => {
  const kernel = await createTestKernel({ plugins: [staticAuth, widgets] });
  t.after(() => kernel.close());
  const bad = await request(kernel, 'localhost', '/api/widgets/Bad1', {
    method: 'POST',
    headers: { ...ADMIN, 'content-type': 'application/json' },
    body: JSON.stringify({ size: 0, color: 'green', extra: true }),
  });
  assert.equal(bad.status, 400);
  const error = json(bad.body).error!;
  assert.equal(error.code, 'TNM_ERR_BAD_REQUEST');
  assert.match(error.message, /params\.id: /);
  const body = await request(kernel, 'localhost', '/api/widgets/abc', {
    method: 'POST',
    headers: { ...ADMIN, 'content-type': 'application/json' },
    body: JSON.stringify({ size: 0, color: 'green', extra: true }),
  });
  const message = json(body.body).error!.message;
  assert.match(message, /body\.size: .*>=1/);
  assert.match(message, /body\.color: /);
  assert.match(message, /body: Unrecognized key.*extra/);
  const notJson = await request(kernel, 'localhost', '/api/widgets/abc', { method: 'POST', headers: { ...ADMIN, 'content-type': 'application/json' }, body: '{nope' });
  assert.equal(notJson.status, 400);
  assert.equal(json(notJson.body).error?.code, 'TNM_ERR_BAD_REQUEST');
});

test('failed attempts are throttled per credential and address, with Retry-After; a valid token never is', { timeout: 60_000 }, async (t) => {
  const kernel = await createTestKernel({ plugins: [staticAuth, widgets] });
  t.after(() => kernel.close());
  // Clients are told apart by their source address: 127.0.0.3 fails, 127.0.0.2 is the operator.
  const from = (address: string, headers: Record<string, string>) =>
    request(kernel, 'localhost', '/api/openapi.json', { headers, localAddress: address });
  for (let i = 0; i < 10; i++) assert.equal((await from('127.0.0.3', { authorization: 'Static wrong' })).status, 401);
  const throttled = await from('127.0.0.3', { authorization: 'Static wrong' });
  assert.equal(throttled.status, 429, 'the failing credential waits');
  assert.ok(Number(throttled.headers['retry-after']) >= 1);
  assert.equal(json(throttled.body).error?.code, 'TNM_ERR_RATE_LIMITED');
  // A valid token is checked first and accepted, from the same address as the failures or from another.
  assert.equal((await from('127.0.0.3', ADMIN)).status, 200);
  assert.equal((await from('127.0.0.2', ADMIN)).status, 200);
});

test('mutating calls are audited with who, what and how it ended; a tenant reads only its own entries', { timeout: 60_000 }, async (t) => {
  const kernel = await createTestKernel({ plugins: [staticAuth, widgets] });
  t.after(() => kernel.close());
  const post = (headers: Record<string, string>, id: string) =>
    request(kernel, 'localhost', `/api/widgets/${id}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: '{"size":1}' });
  await post(ADMIN, 'alice');
  await post(tenant('alice'), 'alice');
  await post(tenant('alice'), 'bob');
  await request(kernel, 'localhost', '/api/widgets', { method: 'DELETE', headers: tenant('bob') });
  await post({}, 'alice');

  const all = json((await request(kernel, 'localhost', '/api/audit?limit=10', { headers: ADMIN })).body) as unknown as {
    entries: Array<{ actor: string; action: string; target: string | null; status: number; at: number }>;
  };
  assert.deepEqual(
    all.entries.map((e) => [e.actor, e.action, e.target, e.status]),
    [
      ['static:bob', 'DELETE /api/widgets', null, 403],
      ['static:alice', 'POST /api/widgets/:id', 'widget:bob', 404],
      ['static:alice', 'POST /api/widgets/:id', 'widget:alice', 201],
      ['static:admin', 'POST /api/widgets/:id', 'widget:alice', 201],
    ],
  );
  const page = json((await request(kernel, 'localhost', '/api/audit?limit=2', { headers: ADMIN })).body) as unknown as { entries: unknown[]; next: number };
  assert.equal(page.entries.length, 2);
  const rest = json((await request(kernel, 'localhost', `/api/audit?limit=10&before=${page.next}`, { headers: ADMIN })).body) as unknown as { entries: unknown[] };
  assert.equal(rest.entries.length, 2);
  const mine = json((await request(kernel, 'localhost', '/api/audit', { headers: tenant('alice') })).body) as unknown as { entries: Array<{ target: string }> };
  assert.deepEqual(mine.entries.map((e) => e.target), ['widget:alice', 'widget:alice']);
  assert.equal((await request(kernel, 'localhost', '/api/audit?limit=0', { headers: ADMIN })).status, 400);
});

test('the OpenAPI document lists every route with its parameters and body', { timeout: 60_000 }, async (t) => {
  const kernel = await createTestKernel({ plugins: [staticAuth, widgets] });
  t.after(() => kernel.close());
  assert.equal((await request(kernel, 'localhost', '/api/openapi.json')).status, 401);
  const doc = json((await request(kernel, 'localhost', '/api/openapi.json', { headers: ADMIN })).body) as unknown as {
    openapi: string;
    paths: Record<string, Record<string, { summary: string; parameters: Array<{ name: string; in: string }>; requestBody?: unknown }>>;
  };
  assert.equal(doc.openapi, '3.1.0');
  const make = doc.paths['/api/widgets/{id}']!.post!;
  assert.equal(make.summary, 'Make a widget');
  assert.deepEqual(make.parameters.map((p) => `${p.in}:${p.name}`), ['path:id']);
  assert.ok(make.requestBody);
  assert.ok(doc.paths['/api/audit']!.get!.parameters.some((p) => p.name === 'limit'));
  assert.ok(doc.paths['/api/widgets']!.delete);
});
