// End to end through the data plane: real kernel, real echo-app processes, real HTTP over loopback. What goes in
// must come out (method, path, headers), minus hop-by-hop headers, plus X-Forwarded-*; upstream connections reused.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { echoService, request, trackedKernel } from '../helpers.ts';
import { TIMEOUT, exchange, names, valuesOf, type Echoed } from './proxy-fixture.ts';

test('spawn and route: {id}.{service}.localhost reaches that instance, with PORT, HOST and DATA_DIR set', { timeout: TIMEOUT }, async (t) => {
  const { kernel } = await trackedKernel(t, { echo: echoService() });
  const alice = await kernel.spawnInstance('echo', 'alice');
  const bob = await kernel.spawnInstance('echo', 'bob');
  assert.equal(alice.state, 'running');
  assert.equal(bob.state, 'running');

  for (const instance of [alice, bob]) {
    const reply = await request(kernel, `${instance.id}.echo.localhost`, '/echo');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-instance'], `echo:${instance.id}`);
    const echoed = JSON.parse(reply.body) as Echoed;
    assert.equal(echoed.instance, `echo:${instance.id}`);
    assert.equal(echoed.env.PORT, String(instance.port));
    assert.equal(echoed.env.HOST, '127.0.0.1');
    assert.equal(echoed.env.DATA_DIR, kernel.instanceDir('echo', instance.id));
  }
  // The reply really came from that instance's process.
  const pid = await request(kernel, 'alice.echo.localhost', '/pid');
  assert.equal(pid.body, String(alice.handle!.pid));
  assert.equal(kernel.instances.size, 2);
});

test('method, path and query, headers and body pass through untouched', { timeout: TIMEOUT }, async (t) => {
  const { kernel } = await trackedKernel(t, { echo: echoService() });
  await kernel.spawnInstance('echo', 'alice');
  const body = JSON.stringify({ hello: 'world', n: [1, 2, 3], unicode: 'żółw ✓' });
  const reply = await exchange(kernel, {
    method: 'PATCH',
    path: '/echo/some/path?a=1&b=two%20words&a=3&empty=',
    headers: [
      'Host', 'Alice.Echo.Localhost:8080',
      'Authorization', 'Bearer tnm_secret-token',
      'X-MiXeD-Case', 'Value With Spaces',
      'X-Multi', 'first',
      'Cookie', 'a=1',
      'X-Multi', 'second',
      'Content-Type', 'application/json; charset=utf-8',
      'Accept', 'application/json',
      'User-Agent', 'tenement-e2e/1',
    ],
    body,
  });
  assert.equal(reply.status, 200);
  const echoed = JSON.parse(reply.body.toString('utf8')) as Echoed;
  assert.equal(echoed.instance, 'echo:alice');
  assert.equal(echoed.method, 'PATCH');
  assert.equal(echoed.url, '/echo/some/path?a=1&b=two%20words&a=3&empty=');
  assert.equal(echoed.body, body);
  // Host is not rewritten, not even its case or port.
  assert.deepEqual(valuesOf(echoed.rawHeaders, 'host'), ['Alice.Echo.Localhost:8080']);
  assert.deepEqual(valuesOf(echoed.rawHeaders, 'authorization'), ['Bearer tnm_secret-token']);
  assert.deepEqual(valuesOf(echoed.rawHeaders, 'content-type'), ['application/json; charset=utf-8']);
  assert.deepEqual(valuesOf(echoed.rawHeaders, 'content-length'), [String(Buffer.byteLength(body))]);
  assert.deepEqual(valuesOf(echoed.rawHeaders, 'user-agent'), ['tenement-e2e/1']);
  assert.deepEqual(valuesOf(echoed.rawHeaders, 'cookie'), ['a=1']);
  // Header names keep their case; repeated headers stay separate lines, in order.
  const sent = names(echoed.rawHeaders);
  assert.ok(sent.includes('X-MiXeD-Case'), `header case lost: ${sent.join(', ')}`);
  assert.deepEqual(valuesOf(echoed.rawHeaders, 'x-mixed-case'), ['Value With Spaces']);
  assert.deepEqual(valuesOf(echoed.rawHeaders, 'x-multi'), ['first', 'second']);
  assert.equal(echoed.headers['x-multi'], 'first, second');

  // An empty-bodied method with an unusual verb and no body.
  const del = await exchange(kernel, { method: 'DELETE', path: '/echo?x=%2F', headers: ['Host', 'alice.echo.localhost'] });
  assert.equal(del.status, 200);
  const echoedDelete = JSON.parse(del.body.toString('utf8')) as Echoed;
  assert.equal(echoedDelete.method, 'DELETE');
  assert.equal(echoedDelete.url, '/echo?x=%2F');
  assert.equal(echoedDelete.body, '');
});

test('request hop-by-hop headers are stripped and X-Forwarded-* added', { timeout: TIMEOUT }, async (t) => {
  const { kernel } = await trackedKernel(t, { echo: echoService() });
  await kernel.spawnInstance('echo', 'alice');
  const reply = await exchange(kernel, {
    path: '/echo',
    headers: [
      'Host', 'alice.echo.localhost',
      'Connection', 'close, X-Hop-Custom',
      'X-Hop-Custom', 'must not pass',
      'Keep-Alive', 'timeout=9, max=99',
      'Proxy-Authorization', 'Basic cHJveHk6c2VjcmV0',
      'Proxy-Connection', 'keep-alive',
      'TE', 'trailers',
      'Upgrade', 'h2c',
      'X-End-To-End', 'must pass',
      'X-Forwarded-For', '203.0.113.9, 198.51.100.2',
    ],
  });
  assert.equal(reply.status, 200);
  const echoed = JSON.parse(reply.body.toString('utf8')) as Echoed;
  const received = names(echoed.rawHeaders).map((n) => n.toLowerCase());
  for (const hop of ['x-hop-custom', 'keep-alive', 'proxy-authorization', 'proxy-connection', 'te', 'upgrade']) {
    assert.ok(!received.includes(hop), `hop-by-hop header ${hop} reached the app: ${received.join(', ')}`);
  }
  // Whatever Connection header the app sees is the proxy's own, never the client's.
  for (const value of valuesOf(echoed.rawHeaders, 'connection')) assert.doesNotMatch(value, /x-hop-custom|close/i);
  assert.deepEqual(valuesOf(echoed.rawHeaders, 'x-end-to-end'), ['must pass']);
  // X-Forwarded-For is appended to, once; proto and host are added.
  assert.deepEqual(valuesOf(echoed.rawHeaders, 'x-forwarded-for'), ['203.0.113.9, 198.51.100.2, 127.0.0.1']);
  assert.deepEqual(valuesOf(echoed.rawHeaders, 'x-forwarded-proto'), ['http']);
  assert.deepEqual(valuesOf(echoed.rawHeaders, 'x-forwarded-host'), ['alice.echo.localhost']);

  // Without an incoming X-Forwarded-For the client address starts it; the Host (with port) is forwarded as sent.
  const plain = await exchange(kernel, { path: '/echo', headers: ['Host', 'alice.echo.localhost:4321'] });
  const echoedPlain = JSON.parse(plain.body.toString('utf8')) as Echoed;
  assert.deepEqual(valuesOf(echoedPlain.rawHeaders, 'x-forwarded-for'), ['127.0.0.1']);
  assert.deepEqual(valuesOf(echoedPlain.rawHeaders, 'x-forwarded-proto'), ['http']);
  assert.deepEqual(valuesOf(echoedPlain.rawHeaders, 'x-forwarded-host'), ['alice.echo.localhost:4321']);
});

test('response status, reason and headers come back, hop-by-hop ones stripped', { timeout: TIMEOUT }, async (t) => {
  const { kernel } = await trackedKernel(t, { echo: echoService() });
  await kernel.spawnInstance('echo', 'alice');
  // Once on a connection that closes, once on one the client keeps alive (so Tenement adds its own hop headers).
  for (const connection of ['close', 'keep-alive']) {
    const reply = await exchange(kernel, {
      path: '/hop-response?status=418',
      headers: ['Host', 'alice.echo.localhost', 'Connection', connection],
    });
    assert.equal(reply.status, 418);
    assert.equal(reply.statusMessage, 'Custom Reason');
    assert.equal(reply.body.toString('utf8'), 'hop');
    const got = names(reply.rawHeaders);
    assert.ok(got.includes('X-Resp-MiXeD-Case'), `response header case lost: ${got.join(', ')}`);
    assert.deepEqual(valuesOf(reply.rawHeaders, 'x-resp-end-to-end'), ['kept']);
    assert.deepEqual(valuesOf(reply.rawHeaders, 'content-type'), ['text/plain']);
    assert.deepEqual(reply.headers['set-cookie'], ['a=1', 'b=2']);
    const lower = got.map((n) => n.toLowerCase());
    for (const hop of ['x-resp-hop', 'proxy-authenticate', 'upgrade']) {
      assert.ok(!lower.includes(hop), `hop-by-hop response header ${hop} reached the client (${connection}): ${got.join(', ')}`);
    }
    for (const value of valuesOf(reply.rawHeaders, 'keep-alive')) assert.doesNotMatch(value, /max=77/, "the app's Keep-Alive leaked");
    for (const value of valuesOf(reply.rawHeaders, 'connection')) assert.doesNotMatch(value, /x-resp-hop/i, "the app's Connection leaked");
  }
  // A status the app picks, with a body, on an ordinary route.
  const missing = await request(kernel, 'alice.echo.localhost', '/hop-response?status=404');
  assert.equal(missing.status, 404);
  assert.equal(missing.body, 'hop');
});

test('upstream connections are kept alive and reused', { timeout: TIMEOUT }, async (t) => {
  const { kernel } = await trackedKernel(t, { echo: echoService() });
  await kernel.spawnInstance('echo', 'alice');
  const ports: string[] = [];
  // Each client request comes on its own fresh connection; the proxy's side should still reuse one.
  for (let i = 0; i < 12; i++) {
    const reply = await request(kernel, 'alice.echo.localhost', '/conn');
    assert.equal(reply.status, 200);
    assert.match(reply.body, /^\d+$/);
    ports.push(reply.body);
  }
  const distinct = new Set(ports);
  assert.ok(distinct.size <= 3, `12 sequential requests used ${distinct.size} upstream connections: ${ports.join(', ')}`);

  // The proxy never asks the app to close (HTTP/1.1 connections persist unless one side says close).
  const echoed = JSON.parse((await request(kernel, 'alice.echo.localhost', '/echo')).body) as Echoed;
  for (const value of valuesOf(echoed.rawHeaders, 'connection')) assert.doesNotMatch(value, /close/i);
});
