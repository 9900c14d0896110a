// The dashboard's sessions (plugins/dashboard, docs/dashboard.md) over real HTTP against a kernel with real
// instances and real bearer tokens: the session cookie and its flags, CSRF, revocation, the shared lock-out, the
// bounds on sessions and their expiry.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apiCall, echoService, type Reply } from '../helpers.ts';
import { adminToken, bearer, dashKernel, openEvents, parse, running, signIn, tenantToken, whoIs, type Json, type Signed } from './dashboard-api-fixture.ts';

test('sign-in sets an HttpOnly SameSite=Strict cookie that authenticates the API like the token; the token is never echoed', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice'] } });
  await running(kernel, 'echo:alice');
  const token = adminToken(kernel);
  const signed = await signIn(kernel, token);
  assert.match(signed.setCookie, /^tenement_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/$/);
  assert.deepEqual(signed.body.identity, { kind: 'admin', name: 'admin' });
  assert.match(signed.csrf, /^[A-Za-z0-9_-]{43}$/);
  assert.ok(!JSON.stringify(signed.body).includes(token), 'the token is not in the answer');

  // A first visit, signed out: a 200 saying so, not a failed request; a bad bearer token is still a 401.
  assert.deepEqual(parse(await apiCall(kernel, 'GET', '/api/session', {})), { identity: null, csrf: null, expiresAt: null });
  assert.equal((await apiCall(kernel, 'GET', '/api/session', bearer('tnm_nope'))).status, 401);
  assert.deepEqual(parse(await apiCall(kernel, 'GET', '/api/session', bearer(token))), { identity: { kind: 'admin', name: 'admin' }, csrf: null, expiresAt: null });
  const session = await apiCall(kernel, 'GET', '/api/session', { cookie: signed.cookie });
  assert.equal(session.status, 200);
  assert.equal(parse(session).csrf, signed.csrf);
  assert.equal(session.headers['cache-control'], 'no-store');
  const list = await apiCall(kernel, 'GET', '/api/instances', { cookie: signed.cookie });
  assert.equal(list.status, 200);
  assert.deepEqual(parse(list).instances.map((i: Json) => i.key), ['echo:alice']);
  // Admin-only routes too: the cookie is the admin token.
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', { cookie: signed.cookie })).status, 200);

  // Over TLS (a TLS edge on this host says so) the cookie is Secure and __Host- prefixed; a remote peer is not believed.
  const tls = await signIn(kernel, token, { 'x-forwarded-proto': 'https' });
  assert.match(tls.setCookie, /^__Host-tenement_session=[A-Za-z0-9_-]{43}; HttpOnly; SameSite=Strict; Path=\/; Secure$/);
  assert.notEqual(await whoIs(kernel, tls.cookie), null);

  // Signing in again from a browser that has a session ends the old one: one sign-in, one session.
  const renewed = await signIn(kernel, token, { cookie: tls.cookie });
  assert.equal(await whoIs(kernel, tls.cookie), null);
  assert.equal(await whoIs(kernel, renewed.cookie), 'admin');

  // Sign-out ends the session server-side (and needs the CSRF token like any change).
  assert.equal((await apiCall(kernel, 'DELETE', '/api/session', { cookie: signed.cookie })).status, 403);
  const out = await apiCall(kernel, 'DELETE', '/api/session', { cookie: signed.cookie, 'x-csrf-token': signed.csrf });
  assert.equal(out.status, 200);
  assert.match(String(out.headers['set-cookie']), /Max-Age=0/);
  const after = await apiCall(kernel, 'GET', '/api/instances', { cookie: signed.cookie });
  assert.equal(after.status, 401);
  assert.equal(parse(after).error.code, 'TNM_ERR_UNAUTHORIZED');
});

test('changes made with the cookie need X-CSRF-Token; bearer requests do not', { timeout: 90_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice'] } });
  await running(kernel, 'echo:alice');
  const signed = await signIn(kernel, adminToken(kernel));
  const pid = kernel.instances.get('echo', 'alice')!.handle!.pid;

  const attempts: Array<Record<string, string>> = [{ cookie: signed.cookie }, { cookie: signed.cookie, 'x-csrf-token': 'wrong' }, { cookie: signed.cookie, 'x-csrf-token': `${signed.csrf}x` }];
  for (const headers of attempts) {
    const refused = await apiCall(kernel, 'POST', '/api/instances/echo/alice/restart', headers);
    assert.equal(refused.status, 403, JSON.stringify(headers));
    assert.equal(parse(refused).error.code, 'TNM_ERR_CSRF');
    const weight = await apiCall(kernel, 'PUT', '/api/instances/echo/alice/weight', headers, { weight: 7 });
    assert.equal(weight.status, 403);
  }
  assert.equal(kernel.instances.get('echo', 'alice')!.handle!.pid, pid, 'nothing was restarted');
  assert.notEqual(kernel.instances.get('echo', 'alice')!.weight, 7);

  const accepted = await apiCall(kernel, 'PUT', '/api/instances/echo/alice/weight', { cookie: signed.cookie, 'x-csrf-token': signed.csrf }, { weight: 7 });
  assert.equal(accepted.status, 200, accepted.body);
  assert.equal(kernel.instances.get('echo', 'alice')!.weight, 7);
  // A cookie-authenticated GET needs no CSRF token; a bearer change needs none either.
  assert.equal((await apiCall(kernel, 'GET', '/api/instances/echo/alice', { cookie: signed.cookie })).status, 200);
  const viaBearer = await apiCall(kernel, 'PUT', '/api/instances/echo/alice/weight', bearer(adminToken(kernel)), { weight: 3 });
  assert.equal(viaBearer.status, 200);
  // With an Authorization header the cookie is ignored: a bad bearer token is a 401 whatever the cookie.
  assert.equal((await apiCall(kernel, 'GET', '/api/instances', { cookie: signed.cookie, authorization: 'Bearer tnm_nope' })).status, 401);
});

test('revoking a token ends its sessions at once, and closes their event streams', { timeout: 90_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice'] } });
  await running(kernel, 'echo:alice');
  const { id, token } = await tenantToken(kernel, 'alice');
  const signed = await signIn(kernel, token);
  const stream = await openEvents(kernel, { cookie: signed.cookie });
  t.after(() => stream.close());
  await stream.next((e) => e.event === 'snapshot', 'snapshot');
  assert.notEqual(await whoIs(kernel, signed.cookie), null);

  assert.equal((await apiCall(kernel, 'DELETE', `/api/tokens/${id}`, bearer(adminToken(kernel)))).status, 200);
  // Closed by the revocation itself, without any request of the session's meanwhile (the periodic check every
  // 15 s only catches what is not revoked here: expiry, a revocation replicated from another server).
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([stream.closed, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('the stream stayed open')), 5_000)))]);
  clearTimeout(timer);
  const after = await apiCall(kernel, 'GET', '/api/instances', { cookie: signed.cookie });
  assert.equal(after.status, 401);
  assert.equal((await signIn(kernel, adminToken(kernel))).body.identity.kind, 'admin');
  const again = await apiCall(kernel, 'POST', '/api/session', {}, { token });
  assert.equal(again.status, 401);
});

test('bad tokens get 401, and sign-in shares the API lock-out per token prefix and address', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() } });
  const from = '127.0.0.7';
  const bad = 'tnm_AAAAAAAAxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx';
  for (let i = 0; i < 10; i++) {
    const reply = await apiCall(kernel, 'POST', '/api/session', {}, { token: bad }, from);
    assert.equal(reply.status, 401, `attempt ${i}`);
    assert.equal(parse(reply).error.code, 'TNM_ERR_UNAUTHORIZED');
    assert.equal(reply.headers['set-cookie'], undefined);
  }
  const locked = await apiCall(kernel, 'POST', '/api/session', {}, { token: bad }, from);
  assert.equal(locked.status, 429);
  assert.ok(Number(locked.headers['retry-after']) > 0);
  // The same bucket as a bearer request with that token prefix from that address.
  const viaBearer = await apiCall(kernel, 'GET', '/api/instances', bearer(`${bad.slice(0, 12)}yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy`), undefined, from);
  assert.equal(viaBearer.status, 429);
  // A valid token is never refused, even from there.
  assert.equal((await signIn(kernel, adminToken(kernel), {}, from)).body.identity.kind, 'admin');
  // Malformed bodies are the client's 400, not a crash; the token is never echoed in an error.
  for (const body of [{}, { token: '' }, { token: 'x'.repeat(10_000) }, { token: 5 }, { token: 'a', extra: 1 }]) {
    const reply = await apiCall(kernel, 'POST', '/api/session', {}, body);
    assert.equal(reply.status, 400, JSON.stringify(body).slice(0, 40));
    assert.ok(!reply.body.includes('xxxxxxxxxx'));
  }
});

test('sessions are bounded: per token, in all, and a huge or doubled cookie authenticates nothing', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() } }, { maxSessions: 20 });
  const admin = adminToken(kernel);
  const mine: Signed[] = [];
  for (let i = 0; i < 17; i++) mine.push(await signIn(kernel, admin));
  // 16 per token: the oldest went.
  assert.equal(await whoIs(kernel, mine[0]!.cookie), null);
  assert.notEqual(await whoIs(kernel, mine[16]!.cookie), null);
  const others: Signed[] = [];
  for (const tenant of ['t1', 't2', 't3', 't4', 't5', 't6']) others.push(await signIn(kernel, (await tenantToken(kernel, tenant)).token));
  // 20 in all: the least recently used admin sessions made room (the one just used above stays).
  assert.equal(await whoIs(kernel, mine[1]!.cookie), null);
  assert.notEqual(await whoIs(kernel, mine[16]!.cookie), null);
  assert.notEqual(await whoIs(kernel, others[5]!.cookie), null);

  const valid = mine[16]!.cookie;
  const hostile = [
    `${valid}; ${'a'.repeat(9_000)}=b`, // longer than any header of ours: not parsed
    `${valid}; tenement_session=${'A'.repeat(43)}`, // a second value planted next to the real one
    `tenement_session=${'A'.repeat(43)}`,
    'tenement_session=__proto__',
    'tenement_session=',
    `tenement_session=${'A'.repeat(5_000)}`,
  ];
  for (const cookie of hostile) {
    assert.equal(await whoIs(kernel, cookie), null, cookie.slice(0, 60));
    assert.equal((await apiCall(kernel, 'GET', '/api/instances', { cookie })).status, 401, cookie.slice(0, 60));
  }
  // A cookie header over the server's header limit is refused by the HTTP layer, not by a crash.
  const huge = await apiCall(kernel, 'GET', '/api/session', { cookie: `tenement_session=${'A'.repeat(70_000)}` }).catch(() => ({ status: 431 }) as Reply);
  assert.ok([400, 431].includes(huge.status), String(huge.status));
  assert.equal(await whoIs(kernel, valid), 'admin', 'the server is fine');
});

test('sessions expire: idle, and absolutely however used', { timeout: 60_000 }, async (t) => {
  const idle = await dashKernel(t, { services: { echo: echoService() } }, { sessionIdle: '1s', sessionMax: '1h' });
  const a = await signIn(idle, adminToken(idle));
  await new Promise((resolve) => setTimeout(resolve, 1_500));
  assert.equal(await whoIs(idle, a.cookie), null);
  assert.equal((await apiCall(idle, 'GET', '/api/instances', { cookie: a.cookie })).status, 401);

  const max = await dashKernel(t, { services: { echo: echoService() } }, { sessionIdle: '1h', sessionMax: '2s' });
  const b = await signIn(max, adminToken(max));
  const until = Date.now() + 2_500;
  // Used all along: the absolute limit ends it anyway.
  while (Date.now() < until) {
    await apiCall(max, 'GET', '/api/instances', { cookie: b.cookie });
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  assert.equal(await whoIs(max, b.cookie), null);
  assert.ok(Number(b.body.expiresAt) <= Date.now());
});
