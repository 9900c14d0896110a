// The fast data plane on raw sockets: framing of every kind, pipelining, keep-alive reuse, and the hand-over
// of a connection to node:http for what the fast path leaves alone (management, HTTP/1.0, Expect).
import assert from 'node:assert/strict';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import { FIXTURES, echoService, request, servePlugins, trackedKernel } from '../helpers.ts';
import { rawExchange } from '../raw-http.ts';

const RAW_APP = path.join(FIXTURES, 'raw-app.mjs');

/** A tracked kernel (see trackedKernel) with a running `raw` and `echo` instance `a`. */
async function kernelFor(t: TestContext): Promise<TestKernel> {
  const { kernel } = await trackedKernel(t, {
    raw: { command: `node ${RAW_APP}`, idleTimeout: false },
    echo: echoService({ idleTimeout: false }),
  });
  await kernel.spawnInstance('raw', 'a');
  await kernel.spawnInstance('echo', 'a');
  return kernel;
}

const count = (text: string, needle: string): number => text.split(needle).length - 1;

test('content-length, chunked (with trailer), 204 and interim responses keep their framing', { timeout: 60_000 }, async (t) => {
  const kernel = await kernelFor(t);
  const get = (p: string) => `GET ${p} HTTP/1.1\r\nHost: a.raw.localhost\r\n\r\n`;
  const { text } = await rawExchange(kernel, [get('/length'), get('/chunked'), get('/no-content'), get('/interim'), get('/length')], (s) => count(s, 'HTTP/1.1 ') === 6 && s.endsWith('length'), { gapMs: 30 });
  const parts = text.split('HTTP/1.1 ').slice(1);
  assert.deepEqual(parts.map((p) => p.slice(0, 3)), ['200', '200', '204', '103', '200', '200']);
  assert.match(parts[0]!, /X-Framing: length\r\n\r\nlength$/);
  assert.match(parts[1]!, /Transfer-Encoding: chunked\r\n/);
  assert.match(parts[1]!, /\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 11\r\n\r\n$/);
  assert.match(parts[2]!, /^204 No Content\r\nX-Framing: none\r\n\r\n$/);
  assert.match(parts[3]!, /^103 Early Hints\r\nLink: <\/a.css>; rel=preload\r\n\r\n$/);
  assert.match(parts[4]!, /\r\n\r\nok$/);
});

test('a body delimited by the upstream closing reaches the client, which is then closed', { timeout: 60_000 }, async (t) => {
  const kernel = await kernelFor(t);
  const { text } = await rawExchange(kernel, ['GET /close HTTP/1.1\r\nHost: a.raw.localhost\r\n\r\n'], () => false);
  assert.match(text, /^HTTP\/1.1 200 OK\r\n/);
  assert.match(text, /Connection: close\r\n/);
  assert.ok(text.endsWith('\r\n\r\nuntil the end'), text);
});

test('HEAD gets headers only, even when they announce a length', { timeout: 60_000 }, async (t) => {
  const kernel = await kernelFor(t);
  const head = 'HEAD /head-me HTTP/1.1\r\nHost: a.raw.localhost\r\n\r\n';
  const { text } = await rawExchange(kernel, [head, 'GET /length HTTP/1.1\r\nHost: a.raw.localhost\r\n\r\n'], (s) => s.endsWith('length'));
  assert.match(text, /^HTTP\/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nHTTP\/1.1 200 OK\r\n/);
});

test('pipelined requests are answered in order on one connection, and upstream connections are reused', { timeout: 60_000 }, async (t) => {
  const kernel = await kernelFor(t);
  const get = 'GET /conn HTTP/1.1\r\nHost: a.raw.localhost\r\n\r\n';
  const { text } = await rawExchange(kernel, [get.repeat(10)], (s) => count(s, 'HTTP/1.1 200') === 10 && /\r\n\r\n\d+$/.test(s));
  const ports = [...text.matchAll(/\r\n\r\n(\d+)/g)].map((m) => m[1]);
  assert.equal(ports.length, 10);
  assert.equal(new Set(ports).size, 1, `one upstream connection for sequential requests: ${ports.join(',')}`);
});

test('a request body split across writes and pipelined with the next request is framed right', { timeout: 60_000 }, async (t) => {
  const kernel = await kernelFor(t);
  const post = 'POST /echo HTTP/1.1\r\nHost: a.echo.localhost\r\nContent-Length: 10\r\n\r\n';
  const chunked = 'POST /echo HTTP/1.1\r\nHost: a.echo.localhost\r\nTransfer-Encoding: chunked\r\n\r\n';
  const { text } = await rawExchange(
    kernel,
    [post + '01234', '56789' + chunked + '3\r\nabc', '\r\n0\r\n\r\nGET /pid HTTP/1.1\r\nHost: a.echo.localhost\r\n\r\n'],
    (s) => count(s, 'HTTP/1.1 200') === 3 && /\r\n\r\n\d+$/.test(s),
    { gapMs: 30 },
  );
  const bodies = [...text.matchAll(/"body":"([^"]*)"/g)].map((m) => m[1]);
  assert.deepEqual(bodies, ['0123456789', 'abc']);
});

test('the same connection can go from a tenant to management and back (handed to node:http)', { timeout: 60_000 }, async (t) => {
  const kernel = await kernelFor(t);
  const { text } = await rawExchange(
    kernel,
    [
      'GET /length HTTP/1.1\r\nHost: a.raw.localhost\r\n\r\n',
      'GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n',
      'GET /length HTTP/1.1\r\nHost: a.raw.localhost\r\n\r\n',
    ],
    (s) => count(s, 'HTTP/1.1 200') === 3 && s.endsWith('length'),
    { gapMs: 30 },
  );
  assert.match(text, /"status":"ok"/);
  assert.equal(count(text, '\r\n\r\nlength'), 2);
});

test('HTTP/1.0 and Expect: 100-continue requests are served through node:http', { timeout: 60_000 }, async (t) => {
  const kernel = await kernelFor(t);
  const { text: old } = await rawExchange(kernel, ['GET /length HTTP/1.0\r\nHost: a.raw.localhost\r\n\r\n'], () => false);
  assert.match(old, /^HTTP\/1.1 200 OK\r\n[\s\S]*\r\n\r\nlength$/);
  const { text: expect } = await rawExchange(
    kernel,
    ['POST /echo HTTP/1.1\r\nHost: a.echo.localhost\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n', 'data'],
    (s) => s.includes('"body":"data"'),
    { gapMs: 50 },
  );
  assert.match(expect, /"body":"data"/);
});

test('with TENEMENT_FAST_PROXY=0 everything goes through node:http and still works', { timeout: 60_000 }, async (t) => {
  process.env.TENEMENT_FAST_PROXY = '0';
  const kernel = await createTestKernel({ plugins: servePlugins, config: { services: { echo: echoService() } } });
  delete process.env.TENEMENT_FAST_PROXY;
  t.after(() => kernel.close());
  await kernel.spawnInstance('echo', 'a');
  const reply = await request(kernel, 'a.echo.localhost', '/echo', { method: 'POST', body: 'slow path' });
  assert.equal(reply.status, 200);
  assert.equal((JSON.parse(reply.body) as { body: string }).body, 'slow path');
  assert.equal(kernel.server.listener, kernel.server.http);
});
