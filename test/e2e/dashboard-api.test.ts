// The dashboard's server side (plugins/dashboard, docs/dashboard.md) over real HTTP against a kernel with real
// instances and real bearer tokens: the session cookie and its flags, CSRF, tenant scoping of the API, the event
// stream and the history, revocation, the shared lock-out, the static files' headers, and hostile requests.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { ConfigInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import type { PluginEntry } from '../../core/plugin.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import dashboard from '../../plugins/dashboard/index.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import wasmPlugins from '../../plugins/wasm-plugins/index.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import { apiCall, echoService, request, servePlugins, waitFor, type Reply } from '../helpers.ts';
import { buildCGuests, wasmFunction } from '../wasm-guests.ts';

type Json = Record<string, any>;
const parse = (reply: Reply): Json => JSON.parse(reply.body) as Json;
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

const INDEX_HTML = '<!doctype html><html><head><script type="module" src="/assets/app-3f2a9c.js"></script></head><body></body></html>\n';
const APP_JS = `export const app = ${JSON.stringify('x'.repeat(4000))};\n`;

// Build folders are removed once the file's tests are done: by then every test's own after-hooks have closed the
// kernels serving them (a removal hook added before a kernel's close would run first, and one that throws skips
// the close).
const builds: string[] = [];
test.after(() => {
  for (const dir of builds) rmSync(dir, { recursive: true, force: true });
});

/** A stand-in for `npm run build:dashboard`'s output: what the server does with it is under test, not the UI. */
function fakeBuild(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tnm-dash-dist-'));
  builds.push(dir);
  mkdirSync(path.join(dir, 'assets'));
  writeFileSync(path.join(dir, 'index.html'), INDEX_HTML);
  writeFileSync(path.join(dir, 'assets', 'app-3f2a9c.js'), APP_JS);
  writeFileSync(path.join(dir, 'assets', 'app-3f2a9c.css'), 'body{margin:0}');
  writeFileSync(path.join(dir, 'favicon.svg'), '<svg xmlns="http://www.w3.org/2000/svg"/>');
  return dir;
}

async function dashKernel(t: TestContext, config: ConfigInput, options: Record<string, unknown> = {}): Promise<TestKernel> {
  const plugins: PluginEntry[] = [...servePlugins, authBearer, instancesApi, wasmPlugins, [dashboard, { distDir: fakeBuild(), ...options }]];
  const kernel = await createTestKernel({ plugins, config: { ...config, settings: { healthInterval: '1h', ...config.settings } } });
  t.after(() => kernel.close());
  return kernel;
}

const adminToken = (kernel: TestKernel): string => readFileSync(path.join(kernel.config.settings.dataDir, 'admin.token'), 'utf8').trim();

async function tenantToken(kernel: TestKernel, tenant: string): Promise<{ id: string; token: string }> {
  const reply = await apiCall(kernel, 'POST', '/api/tokens', bearer(adminToken(kernel)), { name: `${tenant}-token`, tenant });
  assert.equal(reply.status, 201, reply.body);
  return parse(reply) as { id: string; token: string };
}

interface Signed {
  cookie: string;
  csrf: string;
  setCookie: string;
  body: Json;
}

async function signIn(kernel: TestKernel, token: string, headers: Record<string, string> = {}, from?: string): Promise<Signed> {
  const reply = await apiCall(kernel, 'POST', '/api/session', headers, { token }, from);
  assert.equal(reply.status, 200, reply.body);
  const setCookie = String(reply.headers['set-cookie']?.[0] ?? '');
  const cookie = setCookie.split(';', 1)[0]!;
  const body = parse(reply);
  return { cookie, csrf: body.csrf as string, setCookie, body };
}

/** What GET /api/session says of a cookie: signed in (its identity's kind), or null (200 with identity null). */
async function whoIs(kernel: TestKernel, cookie: string): Promise<string | null> {
  const reply = await apiCall(kernel, 'GET', '/api/session', { cookie });
  assert.equal(reply.status, 200, reply.body);
  const body = parse(reply);
  if (body.identity === null) assert.deepEqual(body, { identity: null, csrf: null, expiresAt: null });
  return body.identity === null ? null : (body.identity.kind as string);
}

async function running(kernel: TestKernel, ...keys: string[]): Promise<void> {
  await waitFor(() => keys.every((key) => kernel.instances.getByKey(key)?.state === 'running'), `${keys.join(', ')} running`, 20_000);
}

/** A Server-Sent Events reader: the events so far, and a wait for one that matches. */
interface EventStream {
  status: number;
  events: Array<{ event: string; data: Json }>;
  next(match: (e: { event: string; data: Json }) => boolean, what: string, timeoutMs?: number): Promise<{ event: string; data: Json }>;
  closed: Promise<void>;
  close(): void;
}

function openEvents(kernel: TestKernel, headers: Record<string, string>): Promise<EventStream> {
  const base = new URL(kernel.url);
  return new Promise((resolve, reject) => {
    const req = http.get({ host: base.hostname, port: base.port, path: '/api/events', headers: { host: 'localhost', ...headers }, agent: false }, (res) => {
      const events: Array<{ event: string; data: Json }> = [];
      let buffer = '';
      let seen = 0;
      let closedResolve: () => void = () => undefined;
      const closed = new Promise<void>((r) => (closedResolve = r));
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          let data = '';
          for (const line of block.split('\n')) {
            if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('data: ')) data += line.slice(6);
          }
          if (data !== '') events.push({ event, data: JSON.parse(data) as Json });
        }
      });
      res.on('close', () => closedResolve());
      res.on('error', () => closedResolve());
      resolve({
        status: res.statusCode ?? 0,
        events,
        closed,
        close: () => req.destroy(),
        async next(match, what, timeoutMs = 20_000) {
          let found: { event: string; data: Json } | undefined;
          await waitFor(
            () => {
              for (; seen < events.length; seen++) {
                if (match(events[seen]!)) {
                  found = events[seen];
                  seen += 1;
                  return true;
                }
              }
              return false;
            },
            what,
            timeoutMs,
          );
          return found!;
        },
      });
    });
    req.on('error', reject);
  });
}

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

test('a tenant session sees only its own instances, in the API, the event stream and the history', { timeout: 90_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice', 'bob'] } });
  await running(kernel, 'echo:alice', 'echo:bob');
  const alice = await signIn(kernel, (await tenantToken(kernel, 'alice')).token);
  assert.deepEqual(alice.body.identity, { kind: 'tenant', tenant: 'alice', name: 'alice-token' });

  const list = parse(await apiCall(kernel, 'GET', '/api/instances', { cookie: alice.cookie }));
  assert.deepEqual(list.instances.map((i: Json) => i.key), ['echo:alice']);
  const other = await apiCall(kernel, 'GET', '/api/instances/echo/bob/history', { cookie: alice.cookie });
  assert.equal(other.status, 404);
  assert.equal(parse(other).error.code, 'TNM_ERR_UNKNOWN_INSTANCE');
  assert.equal((await apiCall(kernel, 'GET', '/api/tokens', { cookie: alice.cookie })).status, 403);
  const bobChange = await apiCall(kernel, 'POST', '/api/instances/echo/bob/restart', { cookie: alice.cookie, 'x-csrf-token': alice.csrf });
  assert.equal(bobChange.status, 404);

  const stream = await openEvents(kernel, { cookie: alice.cookie });
  t.after(() => stream.close());
  assert.equal(stream.status, 200);
  const snapshot = await stream.next((e) => e.event === 'snapshot', 'snapshot');
  assert.deepEqual(snapshot.data.instances.map((i: Json) => i.key), ['echo:alice']);
  // bob changes, then alice: alice's stream gets alice's change and nothing of bob's.
  const admin = bearer(adminToken(kernel));
  assert.equal((await apiCall(kernel, 'PUT', '/api/instances/echo/bob/weight', admin, { weight: 9 })).status, 200);
  assert.equal((await apiCall(kernel, 'DELETE', '/api/instances/echo/bob', admin)).status, 200);
  assert.equal((await apiCall(kernel, 'PUT', '/api/instances/echo/alice/weight', admin, { weight: 4 })).status, 200);
  await stream.next((e) => e.event === 'instance' && e.data.key === 'echo:alice' && e.data.weight === 4, "alice's weight change");
  assert.ok(
    stream.events.every((e) => JSON.stringify(e.data).includes('bob') === false),
    `no event about bob: ${JSON.stringify(stream.events.map((e) => e.event))}`,
  );
});

test('the event stream sends instance and removed events when an instance is stopped through the API', { timeout: 90_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice', 'bob'] } });
  await running(kernel, 'echo:alice', 'echo:bob');
  const signed = await signIn(kernel, adminToken(kernel));
  const stream = await openEvents(kernel, { cookie: signed.cookie });
  t.after(() => stream.close());
  assert.equal(stream.status, 200);
  const snapshot = await stream.next((e) => e.event === 'snapshot', 'snapshot');
  assert.deepEqual(snapshot.data.instances.map((i: Json) => i.key), ['echo:alice', 'echo:bob']);
  const item = snapshot.data.instances[0] as Json;
  // The same shape as an item of GET /api/instances.
  const listed = parse(await apiCall(kernel, 'GET', '/api/instances', bearer(adminToken(kernel)))).instances[0] as Json;
  assert.deepEqual(Object.keys(item).sort(), Object.keys(listed).sort());

  const hibernated = await apiCall(kernel, 'POST', '/api/instances/echo/bob/hibernate', { cookie: signed.cookie, 'x-csrf-token': signed.csrf });
  assert.equal(hibernated.status, 200, hibernated.body);
  await stream.next((e) => e.event === 'instance' && e.data.key === 'echo:bob' && e.data.state === 'hibernated', 'bob hibernated');
  assert.equal((await apiCall(kernel, 'DELETE', '/api/instances/echo/alice', bearer(adminToken(kernel)))).status, 200);
  await stream.next((e) => e.event === 'removed' && e.data.key === 'echo:alice', 'alice removed');
  assert.deepEqual(stream.events.find((e) => e.event === 'removed')!.data, { key: 'echo:alice', service: 'echo', id: 'alice' });
});

test('event streams are bounded: past maxStreams a coded 429, and a closed stream frees its place', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() } }, { maxStreams: 2 });
  const headers = bearer(adminToken(kernel));
  const first = await openEvents(kernel, headers);
  const second = await openEvents(kernel, headers);
  t.after(() => {
    first.close();
    second.close();
  });
  assert.equal(first.status, 200);
  assert.equal(second.status, 200);
  const third = await apiCall(kernel, 'GET', '/api/events', headers);
  assert.equal(third.status, 429);
  assert.equal(parse(third).error.code, 'TNM_ERR_RATE_LIMITED');
  assert.ok(Number(third.headers['retry-after']) > 0);
  first.close();
  // Freed when the client leaves, not at the next keep-alive write 15 s later (the server keeps half-open
  // connections, so the client's leaving shows only as the end of what it sends).
  await waitFor(async () => {
    const again = await openEvents(kernel, headers);
    again.close();
    return again.status === 200;
  }, 'a place freed', 5_000);
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

test('static files: index without caching, hashed assets immutable, ETag and 304, gzip, security headers', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() } });
  const index = await request(kernel, 'localhost', '/');
  assert.equal(index.status, 200);
  assert.equal(index.body, INDEX_HTML);
  assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(index.headers['cache-control'], 'no-cache');
  assert.match(String(index.headers['content-security-policy']), /default-src 'self'.*frame-ancestors 'none'/);
  assert.doesNotMatch(String(index.headers['content-security-policy']), /script-src[^;]*unsafe-inline/);
  assert.equal(index.headers['x-frame-options'], 'DENY');
  assert.equal(index.headers['x-content-type-options'], 'nosniff');
  assert.equal(index.headers['referrer-policy'], 'no-referrer');
  const etag = String(index.headers.etag);
  assert.equal((await request(kernel, 'localhost', '/', { headers: { 'if-none-match': etag } })).status, 304);
  assert.equal((await request(kernel, 'localhost', '/index.html')).body, INDEX_HTML);

  const js = await request(kernel, 'localhost', '/assets/app-3f2a9c.js');
  assert.equal(js.status, 200);
  assert.equal(js.body, APP_JS);
  assert.equal(js.headers['content-type'], 'text/javascript; charset=utf-8');
  assert.equal(js.headers['cache-control'], 'public, max-age=31536000, immutable');
  const revalidated = await request(kernel, 'localhost', '/assets/app-3f2a9c.js', { headers: { 'if-none-match': String(js.headers.etag) } });
  assert.equal(revalidated.status, 304);
  assert.equal(revalidated.body, '');
  assert.equal((await request(kernel, 'localhost', '/assets/app-3f2a9c.css')).headers['content-type'], 'text/css; charset=utf-8');
  assert.equal((await request(kernel, 'localhost', '/favicon.svg')).headers['content-type'], 'image/svg+xml');

  // gzip when asked: a raw read, since node's client does not decode.
  const zipped = await rawGet(kernel, '/assets/app-3f2a9c.js', 'Accept-Encoding: gzip, br\r\n');
  assert.match(zipped.head, /content-encoding: gzip/i);
  assert.match(zipped.head, /vary: Accept-Encoding/i);
  assert.equal(gunzipSync(zipped.body).toString(), APP_JS);
  assert.ok(zipped.body.length < APP_JS.length / 10);
});

test('no path reaches a file outside the build: traversal and encoded variants are 404s', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() } });
  const attempts = [
    '/assets/../../etc/passwd',
    '/assets/..%2f..%2fetc%2fpasswd',
    '/assets/%2e%2e/%2e%2e/etc/passwd',
    '/assets/%2e%2e%2f%2e%2e%2fetc%2fpasswd',
    '/assets/..%5c..%5cetc%5cpasswd',
    '/assets/%252e%252e%252fetc%252fpasswd',
    '/..%2fpackage.json',
    '/%2e%2e/package.json',
    '/assets//etc/passwd',
    '/assets/%00',
    '/assets/app-3f2a9c.js%00.html',
    '/index.html/..',
    '/package.json',
    '/__proto__',
    '/constructor',
    '/assets/__proto__',
  ];
  for (const url of attempts) {
    const reply = await rawGet(kernel, url);
    assert.ok(/^HTTP\/1\.1 (404|400)/.test(reply.head), `${url}: ${reply.head.split('\r\n', 1)[0]}`);
    assert.ok(!reply.body.toString().includes('root:'), url);
  }
  assert.equal((await request(kernel, 'localhost', '/assets/app-3f2a9c.js')).status, 200, 'still serving');
});

test('without a build, GET / says how to build it (503) and the API works; `dashboard: false` leaves it all out', { timeout: 60_000 }, async (t) => {
  const empty = mkdtempSync(path.join(os.tmpdir(), 'tnm-dash-empty-'));
  builds.push(empty);
  const kernel = await dashKernel(t, { services: { echo: echoService() } }, { distDir: empty });
  const page = await request(kernel, 'localhost', '/', { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } });
  assert.equal(page.status, 503);
  assert.match(page.body, /npm run build:dashboard/);
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  const script = await request(kernel, 'localhost', '/');
  assert.equal(script.status, 404);
  assert.match((JSON.parse(script.body) as Json).error.message, /npm run build:dashboard/);
  assert.equal((await request(kernel, 'localhost', '/assets/app.js')).status, 404);
  assert.equal((await apiCall(kernel, 'GET', '/api/instances', bearer(adminToken(kernel)))).status, 200);
  // Built while the server runs: picked up without a restart.
  writeFileSync(path.join(empty, 'index.html'), INDEX_HTML);
  await waitFor(async () => (await request(kernel, 'localhost', '/')).status === 200, 'the new build served', 20_000);
  assert.equal((await request(kernel, 'localhost', '/')).body, INDEX_HTML);

  const plugins: PluginEntry[] = [...servePlugins, authBearer, instancesApi, [dashboard, false]];
  const off = await createTestKernel({ plugins, config: { services: { echo: echoService() } } });
  t.after(() => off.close());
  const root = await request(off, 'localhost', '/');
  assert.equal(root.status, 404);
  assert.equal((JSON.parse(root.body) as Json).error.code, 'TNM_ERR_NOT_FOUND');
  assert.equal((await apiCall(off, 'POST', '/api/session', {}, { token: 'x' })).status, 404);
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

test('a tenant stream gets stats of its own running instances only', { timeout: 60_000 }, async (t) => {
  const kernel = await dashKernel(t, { services: { echo: echoService() }, instances: { echo: ['alice', 'bob'] } });
  await running(kernel, 'echo:alice', 'echo:bob');
  const alice = await signIn(kernel, (await tenantToken(kernel, 'alice')).token);
  const stream = await openEvents(kernel, { cookie: alice.cookie });
  t.after(() => stream.close());
  const stats = await stream.next((e) => e.event === 'stats', 'a stats event (every 10 s)', 40_000);
  assert.deepEqual(stats.data.instances.map((i: Json) => i.key), ['echo:alice']);
  const own = stats.data.instances[0] as Json;
  assert.ok((own.memoryBytes as number) > 1_000_000);
  assert.equal(typeof own.rps, 'number');
});

/** GET over a raw socket: the path exactly as written, the body bytes exactly as sent. */
function rawGet(kernel: TestKernel, url: string, extraHeaders = ''): Promise<{ head: string; body: Buffer }> {
  const base = new URL(kernel.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(base.port), base.hostname);
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => {
      const all = Buffer.concat(chunks);
      const split = all.indexOf('\r\n\r\n');
      resolve({ head: all.subarray(0, split).toString('latin1'), body: all.subarray(split + 4) });
    });
    socket.on('error', reject);
    socket.setTimeout(20_000, () => socket.destroy(new Error(`raw GET ${url} timed out`)));
    socket.write(`GET ${url} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n${extraHeaders}\r\n`);
  });
}
