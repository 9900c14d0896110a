// End to end WebSocket upgrades through the proxy, with the `ws` package as the client and the echo fixture
// (which answers each text frame with `echo:<text>`) as the app.
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test, type TestContext } from 'node:test';
import WebSocket from 'ws';
import type { ServiceInput } from '../../core/config/schema.ts';
import type { TestKernel } from '../../core/test-kernel.ts';
import type { InstanceEvent } from '../../core/types.ts';
import { alive, echoService, request, trackedKernel, waitFor } from '../helpers.ts';

const TIMEOUT = 120_000;

/**
 * A tracked kernel (see trackedKernel) plus `sockets`: client sockets registered there that are still open at
 * teardown are dropped before the kernel closes, so the kernel's drain has nothing to wait for.
 */
async function wsKernel(
  t: TestContext,
  services: Record<string, ServiceInput> = { echo: echoService() },
): Promise<{ kernel: TestKernel; events: InstanceEvent[]; sockets: WebSocket[] }> {
  const sockets: WebSocket[] = [];
  const { kernel, events } = await trackedKernel(t, services, {
    beforeClose: () => {
      for (const ws of sockets) ws.terminate();
    },
  });
  return { kernel, events, sockets };
}

function wsUrl(kernel: TestKernel, path = '/'): string {
  return `${kernel.url.replace(/^http/, 'ws')}${path}`;
}

/** Opens a WebSocket through the kernel with the given Host; rejects on any handshake failure. */
function connect(kernel: TestKernel, host: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(kernel), { headers: { host }, perMessageDeflate: false, handshakeTimeout: 60_000 });
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res: IncomingMessage) => {
      ws.terminate();
      reject(new Error(`handshake answered ${res.statusCode}`));
    });
  });
}

/** A handshake that must fail: its HTTP status, headers and body. */
function refusedUpgrade(kernel: TestKernel, host: string): Promise<{ status: number; code: string; headers: IncomingMessage['headers'] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(wsUrl(kernel), { headers: { host }, perMessageDeflate: false, handshakeTimeout: 60_000 });
    ws.once('open', () => {
      ws.terminate();
      reject(new Error(`upgrade for ${host} was accepted`));
    });
    ws.once('error', (error) => reject(error));
    ws.once('unexpected-response', (req, res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        req.destroy();
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error: { code: string; message: string } };
          assert.equal(typeof body.error.message, 'string');
          resolve({ status: res.statusCode ?? 0, code: body.error.code, headers: res.headers });
        } catch (error) {
          reject(error as Error);
        }
      });
      res.on('error', reject);
    });
  });
}

/** Sends each message and collects as many replies, in order. */
function roundTrip(ws: WebSocket, messages: readonly string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const replies: string[] = [];
    const onMessage = (data: WebSocket.RawData, isBinary: boolean): void => {
      assert.equal(isBinary, false);
      replies.push(data.toString());
      if (replies.length === messages.length) {
        ws.off('message', onMessage);
        resolve(replies);
      }
    };
    ws.on('message', onMessage);
    ws.once('close', () => reject(new Error(`closed after ${replies.length} of ${messages.length} replies`)));
    for (const message of messages) ws.send(message);
  });
}

function closed(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => ws.once('close', () => resolve()));
}

test('an upgrade through {id}.{service}.localhost echoes messages both ways', { timeout: TIMEOUT }, async (t) => {
  const { kernel, events, sockets } = await wsKernel(t);
  const alice = await kernel.spawnInstance('echo', 'alice');
  assert.equal(alice.state, 'running');
  const ws = await connect(kernel, 'Alice.Echo.localhost:8080');
  sockets.push(ws);
  // Held open: it counts as a request in flight, which keeps the instance from hibernating.
  assert.equal(alice.inFlight, 1);
  const messages = ['hello', 'second message', 'żółw ✓', 'x'.repeat(5_000)];
  assert.deepEqual(await roundTrip(ws, messages), messages.map((m) => `echo:${m}`));
  // And again on the same connection, one at a time.
  for (const message of ['one', 'two', 'three']) assert.deepEqual(await roundTrip(ws, [message]), [`echo:${message}`]);
  assert.equal(alice.inFlight, 1);

  // Plain HTTP to the same instance works alongside.
  const reply = await request(kernel, 'alice.echo.localhost', '/echo');
  assert.equal(reply.status, 200);

  ws.close();
  await closed(ws);
  await waitFor(() => alice.inFlight === 0, 'the closed WebSocket to leave no request in flight', 15_000);

  // A client that drops its connection without a close frame releases it too.
  const abrupt = await connect(kernel, 'alice.echo.localhost');
  sockets.push(abrupt);
  assert.deepEqual(await roundTrip(abrupt, ['bye']), ['echo:bye']);
  assert.equal(alice.inFlight, 1);
  abrupt.terminate();
  await waitFor(() => alice.inFlight === 0, 'the dropped WebSocket to leave no request in flight', 15_000);
  assert.equal(alice.state, 'running');
  assert.equal(events.filter((e) => e.type === 'spawned').length, 1);
});

test("an upgrade's head goes through the upstreamHeaders hook, as a request's does", { timeout: TIMEOUT }, async (t) => {
  const { kernel, sockets } = await wsKernel(t);
  await kernel.spawnInstance('echo', 'alice');
  kernel.hooks.upstreamHeaders.tap('test-mark', ({ headers }) => {
    headers.push('X-Upstream-Mark', 'signed-by-hook');
  });
  const seen = await new Promise<string | undefined>((resolve, reject) => {
    const ws = new WebSocket(wsUrl(kernel), { headers: { host: 'alice.echo.localhost' }, perMessageDeflate: false, handshakeTimeout: 60_000 });
    sockets.push(ws);
    ws.once('upgrade', (res: IncomingMessage) => resolve(res.headers['x-seen-mark'] as string | undefined));
    ws.once('error', reject);
  });
  assert.equal(seen, 'signed-by-hook');
});

test('two WebSockets to two instances are independent', { timeout: TIMEOUT }, async (t) => {
  // A short drain: removing an instance waits at most this long for its open WebSocket.
  const { kernel, sockets } = await wsKernel(t, { echo: echoService({ drainTimeout: '300ms' }) });
  const alice = await kernel.spawnInstance('echo', 'alice');
  const bob = await kernel.spawnInstance('echo', 'bob');
  const a = await connect(kernel, 'alice.echo.localhost');
  const b = await connect(kernel, 'bob.echo.localhost');
  sockets.push(a, b);
  assert.equal(alice.inFlight, 1);
  assert.equal(bob.inFlight, 1);
  const [fromA, fromB] = await Promise.all([roundTrip(a, ['a1', 'a2']), roundTrip(b, ['b1', 'b2'])]);
  assert.deepEqual(fromA, ['echo:a1', 'echo:a2']);
  assert.deepEqual(fromB, ['echo:b1', 'echo:b2']);

  // When the app goes away, the client's socket is closed too and nothing stays in flight.
  const bPid = bob.handle!.pid!;
  await kernel.removeInstance(bob);
  await closed(b);
  assert.ok(!alive(bPid));
  assert.equal(bob.inFlight, 0);
  assert.deepEqual(await roundTrip(a, ['still here']), ['echo:still here']);
});

test('an upgrade wakes a hibernated instance', { timeout: TIMEOUT }, async (t) => {
  const { kernel, events, sockets } = await wsKernel(t);
  const alice = await kernel.spawnInstance('echo', 'alice');
  const firstPid = alice.handle!.pid!;
  await kernel.hibernate(alice);
  assert.equal(alice.state, 'hibernated');
  assert.equal(alice.handle, null);
  assert.ok(!alive(firstPid));

  const ws = await connect(kernel, 'alice.echo.localhost');
  sockets.push(ws);
  assert.equal(alice.state, 'running');
  // (Read again: the assertions above narrowed `alice.handle` to null.)
  assert.notEqual(kernel.instances.get('echo', 'alice')?.handle?.pid, firstPid);
  assert.ok(events.some((e) => e.type === 'woken' && e.instance === 'echo:alice'), 'a woken event');
  assert.deepEqual(await roundTrip(ws, ['after waking', 'again']), ['echo:after waking', 'echo:again']);
  assert.equal(events.filter((e) => e.type === 'spawned').length, 2);
  ws.close();
  await closed(ws);
  await waitFor(() => alice.inFlight === 0, 'nothing in flight after close', 15_000);
});

test('refused upgrades answer the JSON error and spawn nothing', { timeout: TIMEOUT }, async (t) => {
  const { kernel, events, sockets } = await wsKernel(t);
  await kernel.spawnInstance('echo', 'alice');
  const cases: Array<[host: string, status: number, code: string]> = [
    ['nobody.echo.localhost', 404, 'TNM_ERR_UNKNOWN_INSTANCE'],
    ['alice.nosuch.localhost', 404, 'TNM_ERR_UNKNOWN_SERVICE'],
    ['a_b.echo.localhost', 400, 'TNM_ERR_BAD_NAME'],
    ['a.b.echo.localhost', 400, 'TNM_ERR_BAD_HOST'],
    ['localhost', 404, 'TNM_ERR_NOT_FOUND'],
    ['example.com', 404, 'TNM_ERR_UNKNOWN_HOST'],
  ];
  for (const [host, status, code] of cases) {
    const refused = await refusedUpgrade(kernel, host);
    assert.equal(refused.status, status, host);
    assert.equal(refused.code, code, host);
  }
  assert.equal(kernel.instances.size, 1);
  assert.equal(events.filter((e) => e.type === 'spawned').length, 1);
  // The good one still upgrades.
  const ws = await connect(kernel, 'alice.echo.localhost');
  sockets.push(ws);
  assert.deepEqual(await roundTrip(ws, ['ok']), ['echo:ok']);
});
