// Names are data (issue 18, item 6) in the management API: every route, with `__proto__`, `constructor`,
// `prototype`, `toString`, `hasOwnProperty` and `valueOf` in each path parameter, body and query. Before the fix a
// tenant token's `POST /api/instances/constructor/bob` answered 500, left a ghost instance whose config was
// Object.prototype.constructor, and the next request to it killed the server.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { echoService, waitFor } from '../helpers.ts';
import { LABELS, NAMES, adminToken, assertCoded, assertNoGhost, assertServing, bearer, call, namesKernel, tenantToken } from './names-fixture.ts';

/** Bodies and queries of the routes that take names there; any other route gets the generic ones. */
function inputsFor(method: string, url: string, name: string): { query: string; body: unknown } {
  const q = (params: Record<string, string>): string => `?${new URLSearchParams(params).toString()}`;
  if (url === '/api/deploy') return { query: '', body: { service: 'web', version: name } };
  if (url === '/api/route') return { query: '', body: { service: name, from: 'alice', to: name } };
  if (url === '/api/tokens' && method === 'POST') return { query: '', body: { name, tenant: name } };
  if (url.endsWith('/weight')) return { query: '', body: { weight: 5 } };
  if (url === '/api/instances') return { query: q({ service: name }), body: undefined };
  if (url.startsWith('/api/logs')) return { query: q({ service: name, id: name }), body: undefined };
  return { query: '', body: method === 'GET' || method === 'DELETE' ? undefined : {} };
}

test('every API route, with each prototype name in each path parameter, body and query, for admin and tenant tokens: coded answers, no 500, no ghost, the server keeps serving', { timeout: 600_000 }, async (t) => {
  const kernel = await namesKernel(t, { services: { web: echoService({ tenants: { create: true } }) }, instances: { web: ['alice'] } });
  await waitFor(() => kernel.instances.get('web', 'alice')?.state === 'running', 'web:alice running', 30_000);
  const admin = bearer(adminToken(kernel));
  const callers: Array<[string, Record<string, string>]> = [
    ['admin', admin],
    ['tenant alice', bearer(await tenantToken(kernel, admin, 'alice'))],
    ['tenant constructor', bearer(await tenantToken(kernel, admin, 'constructor'))],
  ];

  const routes = kernel.api.routes;
  assert.ok(routes.length >= 15, `the routes are enumerated (${routes.length})`);
  const withParams = routes.filter((route) => route.url.includes(':'));
  assert.ok(withParams.some((route) => route.url.includes(':service')) && withParams.some((route) => route.url === '/api/tokens/:id'));

  let calls = 0;
  for (const route of routes) {
    const params = [...route.url.matchAll(/:(\w+)/g)].map((m) => m[1]!);
    for (const name of NAMES) {
      // Each parameter in turn gets the name, the others a real value; a route without parameters gets the name
      // in its body or query.
      const urls = params.length === 0 ? [route.url] : params.map((param) => route.url.replace(/:(\w+)/g, (_m, p: string) => (p === param ? encodeURIComponent(name) : p === 'service' ? 'web' : 'alice')));
      for (const url of urls) {
        const { query, body } = inputsFor(route.method, route.url, name);
        for (const [who, headers] of callers) {
          const what = `${who}: ${route.method} ${url}${query}${body === undefined ? '' : ` ${JSON.stringify(body)}`}`;
          const answer = await call(kernel, route.method, url + query, headers, body);
          calls += 1;
          assertCoded(answer, what);
          await assertServing(kernel, what);
          assertNoGhost(kernel, what);
          // A name that is a valid instance id can legitimately be created (the admin, a deploy): it must be a real,
          // working instance, and it is removed again so every call starts from the same state.
          for (const instance of kernel.instances.list()) {
            if (instance.key === 'web:alice') continue;
            assert.ok((LABELS as readonly string[]).includes(instance.id), `${what}: only a valid name was created (${instance.key})`);
            const reached = await call(kernel, 'GET', '/echo', {}, undefined, `${instance.id}.web.localhost`);
            assert.equal(reached.status, 200, `${what}: ${instance.key} serves`);
            assert.equal(reached.headers['x-instance'], instance.key);
            await kernel.removeInstance(instance);
          }
        }
      }
    }
  }
  assert.ok(calls > 500, `${calls} calls`);
  assert.equal(kernel.instances.get('web', 'alice')?.state, 'running');
});
