// End to end through the data plane: real kernel, real echo-app processes, real HTTP over loopback.
// What goes in must come out (method, path, headers, bodies), minus hop-by-hop headers, plus X-Forwarded-*.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import http, { type IncomingHttpHeaders } from 'node:http';
import { test } from 'node:test';
import type { TestKernel } from '../../core/test-kernel.ts';
import { echoService, request, trackedKernel } from '../helpers.ts';

const TIMEOUT = 120_000;

interface Exchange {
  status: number;
  statusMessage: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
}

/**
 * One request on a fresh connection with exact, ordered raw headers (Host included). The body is sent in one
 * piece with a Content-Length, or as the given pieces with chunked framing (no Content-Length).
 */
function exchange(
  kernel: TestKernel,
  options: { method?: string; path?: string; headers: string[]; body?: string | Buffer; pieces?: Array<string | Buffer> },
): Promise<Exchange> {
  const base = new URL(kernel.url);
  const headers = [...options.headers];
  if (options.body !== undefined) headers.push('Content-Length', String(Buffer.byteLength(options.body)));
  if (options.pieces !== undefined) headers.push('Transfer-Encoding', 'chunked');
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: base.hostname, port: base.port, method: options.method ?? 'GET', path: options.path ?? '/', headers, agent: false, setHost: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            statusMessage: res.statusMessage ?? '',
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    req.setTimeout(60_000, () => req.destroy(new Error(`${options.method ?? 'GET'} ${options.path ?? '/'} timed out`)));
    req.on('error', reject);
    if (options.pieces) {
      const pieces = [...options.pieces];
      const next = (): void => {
        const piece = pieces.shift();
        if (piece === undefined) return void req.end();
        req.write(piece);
        setTimeout(next, 5);
      };
      next();
    } else {
      req.end(options.body);
    }
  });
}

/** Names (as sent) of a flat rawHeaders array. */
const names = (raw: readonly string[]): string[] => raw.filter((_, i) => i % 2 === 0);
const valuesOf = (raw: readonly string[], name: string): string[] =>
  raw.flatMap((value, i) => (i % 2 === 1 && raw[i - 1]!.toLowerCase() === name.toLowerCase() ? [value] : []));

interface Echoed {
  instance: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  rawHeaders: string[];
  body: string;
  env: { PORT: string; HOST: string; DATA_DIR: string };
}

interface Digest {
  method: string;
  bytes: number;
  sha256: string;
  contentLength: string | null;
  transferEncoding: string | null;
}

/** Byte i is i % 251, as the fixture's /big sends it. */
function pattern(bytes: number): Buffer {
  const buffer = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) buffer[i] = i % 251;
  return buffer;
}

const sha256 = (data: Buffer | string): string => createHash('sha256').update(data).digest('hex');

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

test('a ~5 MB request body streams through with its Content-Length', { timeout: TIMEOUT }, async (t) => {
  const { kernel } = await trackedKernel(t, { echo: echoService() });
  await kernel.spawnInstance('echo', 'alice');
  const size = 5 * 1024 * 1024 + 17;
  const payload = pattern(size);
  const base = new URL(kernel.url);
  // Written piece by piece with backpressure, not handed over in one buffer.
  const reply = await new Promise<Exchange>((resolve, reject) => {
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method: 'PUT',
        path: '/digest',
        headers: { host: 'alice.echo.localhost', 'content-length': String(size), 'content-type': 'application/octet-stream' },
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, statusMessage: '', headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(90_000, () => req.destroy(new Error('upload timed out')));
    req.on('error', reject);
    let offset = 0;
    const pump = (): void => {
      while (offset < size) {
        const end = Math.min(size, offset + 64 * 1024);
        const more = req.write(payload.subarray(offset, end));
        offset = end;
        if (!more) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
  assert.equal(reply.status, 200);
  const digest = JSON.parse(reply.body.toString('utf8')) as Digest;
  assert.equal(digest.method, 'PUT');
  assert.equal(digest.bytes, size);
  assert.equal(digest.sha256, sha256(payload));
  assert.equal(digest.contentLength, String(size));
  assert.equal(digest.transferEncoding, null);
});

test('an upload with Expect: 100-continue gets the interim answer, then streams through', { timeout: TIMEOUT }, async (t) => {
  const { kernel } = await trackedKernel(t, { echo: echoService() });
  await kernel.spawnInstance('echo', 'alice');
  const payload = pattern(2 * 1024 * 1024 + 5);
  const base = new URL(kernel.url);
  let continued = false;
  const reply = await new Promise<Exchange>((resolve, reject) => {
    const req = http.request({
      host: base.hostname,
      port: base.port,
      method: 'POST',
      path: '/digest',
      headers: { host: 'alice.echo.localhost', expect: '100-continue', 'content-length': String(payload.length) },
      agent: false,
    });
    // The body is only sent once the 100 Continue came back (as curl does for large uploads).
    req.on('continue', () => {
      continued = true;
      req.end(payload);
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, statusMessage: '', headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }),
      );
      res.on('error', reject);
    });
    req.setTimeout(60_000, () => req.destroy(new Error('upload timed out')));
    req.on('error', reject);
    req.flushHeaders();
  });
  assert.ok(continued, 'a 100 Continue reached the client');
  assert.equal(reply.status, 200);
  const digest = JSON.parse(reply.body.toString('utf8')) as Digest;
  assert.equal(digest.bytes, payload.length);
  assert.equal(digest.sha256, sha256(payload));
});

test('HEAD answers headers only, and the connection stays in step', { timeout: TIMEOUT }, async (t) => {
  const { kernel } = await trackedKernel(t, { echo: echoService() });
  await kernel.spawnInstance('echo', 'alice');
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  const base = new URL(kernel.url);
  const send = (method: string, path: string): Promise<Exchange> =>
    new Promise((resolve, reject) => {
      const req = http.request({ host: base.hostname, port: base.port, method, path, headers: { host: 'alice.echo.localhost' }, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, statusMessage: '', headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      });
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      req.end();
    });
  for (let i = 0; i < 3; i++) {
    const head = await send('HEAD', '/big?bytes=100000');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '100000');
    assert.equal(head.body.length, 0);
    // The next answer on the same connection is its own, not stray bytes of the last one.
    const get = await send('GET', '/big?bytes=1000');
    assert.equal(get.status, 200);
    assert.equal(sha256(get.body), sha256(pattern(1000)));
  }
});

test('a chunked request body (no Content-Length) passes through, whatever the method', { timeout: TIMEOUT }, async (t) => {
  const { kernel } = await trackedKernel(t, { echo: echoService() });
  await kernel.spawnInstance('echo', 'alice');
  const pieces = ['first piece|', Buffer.from([0, 1, 2, 255, 254]), '|żółw|', 'x'.repeat(100_000), '|last'];
  const expected = Buffer.concat(pieces.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'GET']) {
    const reply = await exchange(kernel, { method, path: '/digest', headers: ['Host', 'alice.echo.localhost'], pieces });
    assert.equal(reply.status, 200, `${method}: ${reply.body.toString('utf8')}`);
    const digest = JSON.parse(reply.body.toString('utf8')) as Digest;
    assert.equal(digest.method, method);
    assert.equal(digest.bytes, expected.length, `${method} body length`);
    assert.equal(digest.sha256, sha256(expected), `${method} body content`);
    assert.equal(digest.contentLength, null);
    assert.equal(digest.transferEncoding, 'chunked');
  }
  // A body that looks like a request stays a body: were it sent unframed, the app would run it and exit.
  const pid = kernel.instances.get('echo', 'alice')!.handle!.pid;
  const smuggled = 'GET /exit?code=0 HTTP/1.1\r\nHost: alice.echo.localhost\r\n\r\n';
  for (const method of ['GET', 'DELETE']) {
    const reply = await exchange(kernel, { method, path: '/digest', headers: ['Host', 'alice.echo.localhost'], pieces: [smuggled] });
    assert.equal(reply.status, 200);
    assert.equal((JSON.parse(reply.body.toString('utf8')) as Digest).sha256, sha256(smuggled));
  }
  const after = await request(kernel, 'alice.echo.localhost', '/pid');
  assert.equal(after.status, 200);
  assert.equal(after.body, String(pid));
  assert.equal(kernel.instances.get('echo', 'alice')!.state, 'running');
});

test('a ~5 MB response body comes back intact, with and without Content-Length', { timeout: TIMEOUT }, async (t) => {
  const { kernel } = await trackedKernel(t, { echo: echoService() });
  await kernel.spawnInstance('echo', 'alice');
  const size = 5 * 1024 * 1024 + 3;
  const expected = sha256(pattern(size));
  const sized = await exchange(kernel, { path: `/big?bytes=${size}`, headers: ['Host', 'alice.echo.localhost'] });
  assert.equal(sized.status, 200);
  assert.equal(sized.headers['content-length'], String(size));
  assert.equal(sized.headers['content-type'], 'application/octet-stream');
  assert.equal(sized.body.length, size);
  assert.equal(sha256(sized.body), expected);

  const chunked = await exchange(kernel, { path: `/big?bytes=${size}&chunked=1`, headers: ['Host', 'alice.echo.localhost'] });
  assert.equal(chunked.status, 200);
  assert.equal(chunked.headers['content-length'], undefined);
  assert.equal(chunked.headers['transfer-encoding'], 'chunked');
  assert.equal(chunked.body.length, size);
  assert.equal(sha256(chunked.body), expected);
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
