// End to end error paths of the proxy: every error Tenement answers itself is JSON
// `{ error: { code: 'TNM_ERR_...', message } }` with the right status, and none of them spawns anything it should not.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { test } from 'node:test';
import type { TestKernel } from '../../core/test-kernel.ts';
import { alive, echoService, request, trackedKernel, waitFor, type Reply } from '../helpers.ts';

const TIMEOUT = 120_000;

/** Asserts a reply is Tenement's own JSON error with this status and code; returns its message. */
function assertError(reply: Reply, status: number, code: string, what = ''): string {
  assert.equal(reply.status, status, `${what} status (body ${reply.body})`);
  assert.match(String(reply.headers['content-type']), /^application\/json/, `${what} content-type`);
  const body = JSON.parse(reply.body) as { error?: { code?: unknown; message?: unknown } };
  assert.equal(body.error?.code, code, `${what} code (body ${reply.body})`);
  assert.equal(typeof body.error?.message, 'string', `${what} message`);
  assert.ok((body.error.message as string).length > 0);
  return body.error.message as string;
}

/** Asserts a 503 carries a Retry-After of a positive whole number of seconds. */
function assertRetryAfter(reply: Reply): void {
  const value = reply.headers['retry-after'];
  assert.ok(typeof value === 'string' && /^\d+$/.test(value) && Number(value) >= 1, `Retry-After ${String(value)}`);
}

/** Sends raw bytes and reads the whole answer (the server closes the connection). */
function rawExchange(kernel: TestKernel, text: string): Promise<Reply> {
  const base = new URL(kernel.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(base.port), base.hostname, () => socket.write(text));
    const chunks: Buffer[] = [];
    socket.setTimeout(30_000, () => socket.destroy(new Error('raw exchange timed out')));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', reject);
    socket.on('end', () => {
      socket.destroy();
      const all = Buffer.concat(chunks).toString('utf8');
      const split = all.indexOf('\r\n\r\n');
      if (split === -1) return reject(new Error(`no complete response: ${JSON.stringify(all)}`));
      const [statusLine, ...lines] = all.slice(0, split).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      let body = all.slice(split + 4);
      if (headers['content-length'] !== undefined) body = body.slice(0, Number(headers['content-length']));
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body });
    });
  });
}

test('malformed hosts are a 400 before any work', { timeout: TIMEOUT }, async (t) => {
  const { kernel, spawns } = await trackedKernel(t, { echo: echoService({ autoCreate: true }) });
  await kernel.spawnInstance('echo', 'alice');
  const cases: Array<[host: string, code: string]> = [
    ['a_b.echo.localhost', 'TNM_ERR_BAD_NAME'],
    ['-alice.echo.localhost', 'TNM_ERR_BAD_NAME'],
    ['alice-.echo.localhost', 'TNM_ERR_BAD_NAME'],
    [`${'a'.repeat(64)}.echo.localhost`, 'TNM_ERR_BAD_NAME'],
    ['alice.e_cho.localhost', 'TNM_ERR_BAD_NAME'],
    ['a.b.echo.localhost', 'TNM_ERR_BAD_HOST'],
    ['x.alice.echo.localhost:8080', 'TNM_ERR_BAD_HOST'],
    ['.echo.localhost', 'TNM_ERR_BAD_NAME'],
  ];
  for (const [host, code] of cases) {
    assertError(await request(kernel, host, '/echo'), 400, code, host);
  }

  // No Host header at all, over HTTP/1.1 and HTTP/1.0, and an empty one; also on an upgrade request.
  const raw = [
    'GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n',
    'GET /echo HTTP/1.0\r\n\r\n',
    'GET /echo HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n',
    'GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
  ];
  for (const text of raw) {
    assertError(await rawExchange(kernel, text), 400, 'TNM_ERR_BAD_HOST', JSON.stringify(text));
  }
  // autoCreate does not make a bad name acceptable, and nothing was created or spawned.
  assert.equal(kernel.instances.size, 1);
  assert.deepEqual(Object.fromEntries(spawns), { 'echo:alice': 1 });
});

test('unknown service, unknown host and unknown instance are 404s that create nothing', { timeout: TIMEOUT }, async (t) => {
  const { kernel, spawns } = await trackedKernel(t, { echo: echoService() });
  await kernel.spawnInstance('echo', 'alice');
  const before = kernel.instances.size;
  assertError(await request(kernel, 'alice.nosuch.localhost', '/echo'), 404, 'TNM_ERR_UNKNOWN_SERVICE');
  assertError(await request(kernel, 'nosuch.localhost', '/echo'), 404, 'TNM_ERR_UNKNOWN_SERVICE');
  assertError(await request(kernel, 'alice.echo.example.com', '/echo'), 404, 'TNM_ERR_UNKNOWN_HOST');
  for (const host of ['bob.echo.localhost', 'BOB.echo.localhost:8080']) {
    const message = assertError(await request(kernel, host, '/echo', { method: 'POST', body: 'x' }), 404, 'TNM_ERR_UNKNOWN_INSTANCE', host);
    assert.match(message, /echo:bob/);
  }
  assert.equal(kernel.instances.size, before);
  assert.equal(kernel.instances.get('echo', 'bob'), undefined);
  assert.ok(!existsSync(kernel.instanceDir('echo', 'bob')), 'no data directory for an unknown instance');
  assert.deepEqual(Object.fromEntries(spawns), { 'echo:alice': 1 });

  // A service with no instance at all has nothing to offer on its weighted host.
  const empty = await trackedKernel(t, { echo: echoService() });
  assertError(await request(empty.kernel, 'echo.localhost', '/echo'), 503, 'TNM_ERR_NO_HEALTHY_INSTANCE');
  assert.equal(empty.kernel.instances.size, 0);
  assert.equal(empty.spawns.size, 0);
});

test('autoCreate: true creates and starts an unknown instance on its first request', { timeout: TIMEOUT }, async (t) => {
  const { kernel, spawns } = await trackedKernel(t, { auto: echoService({ autoCreate: true }), echo: echoService() });
  assert.equal(kernel.instances.size, 0);
  const first = await request(kernel, 'carol.auto.localhost', '/echo?first=1', { method: 'POST', body: 'hello' });
  assert.equal(first.status, 200, first.body);
  assert.equal(first.headers['x-instance'], 'auto:carol');
  assert.equal((JSON.parse(first.body) as { body: string }).body, 'hello');
  const carol = kernel.instances.get('auto', 'carol');
  assert.equal(carol?.state, 'running');
  const again = await request(kernel, 'carol.auto.localhost', '/echo');
  assert.equal(again.status, 200);
  assert.deepEqual(Object.fromEntries(spawns), { 'auto:carol': 1 });
  // Only for the service that opts in.
  assertError(await request(kernel, 'carol.echo.localhost', '/echo'), 404, 'TNM_ERR_UNKNOWN_INSTANCE');
  assert.equal(kernel.instances.size, 1);
});

test('wake failure: an app that dies at start is a 503 with Retry-After, and is not retried per request', { timeout: TIMEOUT }, async (t) => {
  const { kernel, spawns } = await trackedKernel(t, {
    crash: { command: 'node', args: ['-e', 'process.exit(3)'], maxRestarts: 0 },
    clean: { command: 'node', args: ['-e', 'process.exit(0)'], restart: 'on-failure' },
  });
  // Exits with an error, no restarts allowed: the instance ends failed.
  const crash = kernel.createInstance('crash', 'x');
  const first = await request(kernel, 'x.crash.localhost', '/');
  assertError(first, 503, 'TNM_ERR_INSTANCE_FAILED');
  assertRetryAfter(first);
  assert.equal(crash.state, 'failed');
  const second = await request(kernel, 'x.crash.localhost', '/');
  assertError(second, 503, 'TNM_ERR_INSTANCE_FAILED');
  assertRetryAfter(second);
  assert.equal(spawns.get('crash:x'), 1, 'a failed instance is not spawned again by traffic');

  // Exits cleanly at start under restart: on-failure: it ends stopped, and the wake failed.
  const clean = kernel.createInstance('clean', 'y');
  const stopped = await request(kernel, 'y.clean.localhost', '/');
  assertError(stopped, 503, 'TNM_ERR_WAKE_FAILED');
  assertRetryAfter(stopped);
  assert.equal(clean.state, 'stopped');
  assert.equal(spawns.get('clean:y'), 1);
  assert.deepEqual([...spawns.keys()].sort(), ['clean:y', 'crash:x']);
});

test('wake timeout: an app that never listens is a 503 with Retry-After', { timeout: TIMEOUT }, async (t) => {
  const { kernel, spawns } = await trackedKernel(t, {
    // A long backoff so the kernel does not keep starting it again during the test.
    mute: { command: 'node', args: ['-e', 'setInterval(()=>{},1000)'], startupTimeout: '300ms', backoff: { base: '10m', max: '10m' } },
  });
  const mute = kernel.createInstance('mute', 'z');
  const reply = await request(kernel, 'z.mute.localhost', '/');
  assertError(reply, 503, 'TNM_ERR_WAKE_TIMEOUT');
  assertRetryAfter(reply);
  assert.notEqual(mute.state, 'running');
  assert.deepEqual(Object.fromEntries(spawns), { 'mute:z': 1 });
  // The kernel gave up on that process; it does not linger.
  await waitFor(() => mute.handle === null, 'the timed-out process to be stopped', 15_000);
});

test('wake queue full: requests beyond wakeQueue get 503 at once, the queued ones are served', { timeout: TIMEOUT }, async (t) => {
  const slowApp =
    "setTimeout(()=>require('http').createServer((q,s)=>s.end('up')).listen(Number(process.env.PORT),process.env.HOST),3000)";
  const { kernel, spawns } = await trackedKernel(t, {
    slow: { command: 'node', args: ['-e', slowApp], wakeQueue: 2, startupTimeout: '60s' },
  });
  const slow = kernel.createInstance('slow', 's');
  const replies = await Promise.all(Array.from({ length: 5 }, () => request(kernel, 's.slow.localhost', '/', { timeoutMs: 60_000 })));
  const served = replies.filter((r) => r.status === 200);
  const refused = replies.filter((r) => r.status !== 200);
  assert.equal(served.length, 2, replies.map((r) => `${r.status} ${r.body}`).join('\n'));
  for (const reply of served) assert.equal(reply.body, 'up');
  assert.equal(refused.length, 3);
  for (const reply of refused) {
    assertError(reply, 503, 'TNM_ERR_WAKE_QUEUE_FULL');
    assertRetryAfter(reply);
  }
  assert.equal(slow.state, 'running');
  assert.deepEqual(Object.fromEntries(spawns), { 'slow:s': 1 });
});

test('upstream refused: a running app that stopped listening is a 502', { timeout: TIMEOUT }, async (t) => {
  const { kernel, spawns } = await trackedKernel(t, { echo: echoService() });
  const alice = await kernel.spawnInstance('echo', 'alice');
  const pid = alice.handle!.pid!;
  const closed = await request(kernel, 'alice.echo.localhost', '/close-listener');
  assert.equal(closed.status, 200);
  assert.equal(closed.body, 'closed');
  for (const method of ['GET', 'POST']) {
    const reply = await request(kernel, 'alice.echo.localhost', '/echo', { method, body: method === 'POST' ? 'data' : undefined });
    assertError(reply, 502, 'TNM_ERR_UPSTREAM_REFUSED', method);
  }
  // The same on the weighted host, where it is the only candidate.
  assertError(await request(kernel, 'echo.localhost', '/echo'), 502, 'TNM_ERR_UPSTREAM_REFUSED', 'weighted');
  // The process is still there and nothing was spawned in its place.
  assert.ok(alive(pid));
  assert.equal(alice.state, 'running');
  assert.equal(alice.inFlight, 0);
  assert.deepEqual(Object.fromEntries(spawns), { 'echo:alice': 1 });
});

test('upstream slower than requestTimeout is a 504, and the instance keeps serving', { timeout: TIMEOUT }, async (t) => {
  const { kernel, spawns } = await trackedKernel(t, { echo: echoService({ requestTimeout: '300ms' }) });
  const alice = await kernel.spawnInstance('echo', 'alice');
  const slow = await request(kernel, 'alice.echo.localhost', '/slow?ms=2000');
  const message = assertError(slow, 504, 'TNM_ERR_UPSTREAM_TIMEOUT');
  assert.match(message, /echo:alice/);
  const slowPost = await request(kernel, 'alice.echo.localhost', '/slow?ms=2000', { method: 'POST', body: 'payload' });
  assertError(slowPost, 504, 'TNM_ERR_UPSTREAM_TIMEOUT', 'POST');
  // A quick answer within the timeout is fine, before and after.
  const quick = await request(kernel, 'alice.echo.localhost', '/slow?ms=10');
  assert.equal(quick.status, 200);
  assert.equal(quick.body, 'slow');
  const echo = await request(kernel, 'alice.echo.localhost', '/echo');
  assert.equal(echo.status, 200);
  assert.equal(alice.state, 'running');
  await waitFor(() => alice.inFlight === 0, 'no request in flight', 15_000);
  assert.deepEqual(Object.fromEntries(spawns), { 'echo:alice': 1 });
});
