// End to end through the data plane, the bodies: real kernel, real echo-app processes, real HTTP over loopback.
// Large request and response bodies stream through intact, sized or chunked, with Expect: 100-continue, and HEAD
// and chunked requests keep the connection in step.
import assert from 'node:assert/strict';
import http from 'node:http';
import { test } from 'node:test';
import { echoService, request, trackedKernel } from '../helpers.ts';
import { TIMEOUT, exchange, pattern, sha256, type Digest, type Exchange } from './proxy-fixture.ts';

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
