// The proxy policy (core/dataplane/policy.ts) end to end, on both paths: a kept-alive upstream connection that
// the instance closes just as it is reused is sent the request again on a fresh connection, once; a candidate
// that refuses the connection passes the request to the next one, body and all.
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import WebSocket from 'ws';
import type { TestKernel } from '../../core/test-kernel.ts';
import { ECHO_APP, FIXTURES, echoService, request, trackedKernel, waitFor } from '../helpers.ts';

const STALE_APP = path.join(FIXTURES, 'stale-keepalive-app.mjs');

async function kernelOn(t: TestContext, fastPath: boolean): Promise<TestKernel> {
  if (!fastPath) process.env.TENEMENT_FAST_PROXY = '0';
  try {
    const { kernel } = await trackedKernel(t, {
      stale: { command: `node ${STALE_APP}`, idleTimeout: false },
      echo: echoService({ idleTimeout: false }),
    });
    assert.equal(kernel.server.listener === kernel.server.http, !fastPath);
    return kernel;
  } finally {
    delete process.env.TENEMENT_FAST_PROXY;
  }
}

for (const fastPath of [true, false]) {
  const name = fastPath ? 'fast path' : 'node:http path';
  test(`${name}: a stale kept-alive connection is replaced and the request sent again (GET and bodyless POST)`, { timeout: 60_000 }, async (t) => {
    const kernel = await kernelOn(t, fastPath);
    await kernel.spawnInstance('stale', 'a');
    const seen: number[] = [];
    for (const method of ['GET', 'GET', 'POST', 'GET', 'DELETE', 'GET']) {
      const reply = await request(kernel, 'a.stale.localhost', '/', { method });
      assert.equal(reply.status, 200, `${method} #${seen.length + 1}: ${reply.status} ${reply.body}`);
      seen.push(Number(reply.body));
    }
    // Every request after the first found its pooled connection stale and was answered on a new one.
    assert.ok(seen.every((connection, i) => i === 0 || connection > seen[i - 1]!), `connections: ${seen.join(', ')}`);
  });
}

for (const fastPath of [true, false]) {
  const name = fastPath ? 'fast path' : 'node:http path';
  test(`${name}: a candidate that refuses the connection passes any request, body included, to the next`, { timeout: 60_000 }, async (t) => {
    const kernel = await kernelOn(t, fastPath);
    const refusing = await kernel.spawnInstance('echo', 'refusing');
    const open = await kernel.spawnInstance('echo', 'open');
    assert.equal((await request(kernel, 'refusing.echo.localhost', '/close-listener')).body, 'closed');
    // The refusing instance comes first for nearly every request.
    kernel.setWeight(refusing, 95);
    kernel.setWeight(open, 5);
    for (let i = 0; i < 12; i++) {
      const method = ['GET', 'POST', 'PUT'][i % 3]!;
      const body = method === 'GET' ? undefined : `payload ${i}`;
      const reply = await request(kernel, 'echo.localhost', '/echo', { method, body });
      assert.equal(reply.status, 200, `${method} #${i}: ${reply.status} ${reply.body}`);
      assert.equal(reply.headers['x-instance'], 'echo:open');
      const echoed = JSON.parse(reply.body) as { method: string; body: string };
      assert.equal(echoed.method, method);
      assert.equal(echoed.body, body ?? '');
    }
    assert.equal(refusing.inFlight, 0);
    assert.equal(open.inFlight, 0);
  });
}

test('an upgrade whose candidate refuses the connection goes to the next candidate', { timeout: 60_000 }, async (t) => {
  const sockets: WebSocket[] = [];
  const { kernel } = await trackedKernel(t, { echo: echoService({ idleTimeout: false }) }, {
    beforeClose: () => {
      for (const ws of sockets) ws.terminate();
    },
  });
  const refusing = await kernel.spawnInstance('echo', 'refusing');
  const open = await kernel.spawnInstance('echo', 'open');
  assert.equal((await request(kernel, 'refusing.echo.localhost', '/close-listener')).body, 'closed');
  kernel.setWeight(refusing, 95);
  kernel.setWeight(open, 5);
  for (let i = 0; i < 6; i++) {
    const ws = await new Promise<WebSocket>((resolve, reject) => {
      const socket = new WebSocket(kernel.url.replace(/^http/, 'ws'), { headers: { host: 'echo.localhost' }, perMessageDeflate: false, handshakeTimeout: 30_000 });
      sockets.push(socket);
      socket.once('open', () => resolve(socket));
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade #${i} answered ${res.statusCode}`)));
    });
    const echoed = await new Promise<string>((resolve) => {
      ws.once('message', (data) => resolve(String(data)));
      ws.send(`hello ${i}`);
    });
    assert.equal(echoed, `echo:hello ${i}`);
    assert.equal(open.inFlight, 1);
    assert.equal(refusing.inFlight, 0);
    ws.close();
    await waitFor(() => open.inFlight === 0, 'the closed WebSocket to leave no request in flight', 15_000);
  }
});

for (const fastPath of [true, false]) {
  const name = fastPath ? 'fast path' : 'node:http path';
  test(`${name}: a client gone while one candidate wakes does not wake the next one`, { timeout: 90_000 }, async (t) => {
    if (!fastPath) process.env.TENEMENT_FAST_PROXY = '0';
    let tracked: Awaited<ReturnType<typeof trackedKernel>>;
    try {
      // Slow to start, so the client can leave in the middle of a wake.
      tracked = await trackedKernel(t, { slow: echoService({ command: `sh -c 'sleep 1; exec node ${ECHO_APP}'`, idleTimeout: false }) });
    } finally {
      delete process.env.TENEMENT_FAST_PROXY;
    }
    const { kernel, events } = tracked;
    const first = await kernel.spawnInstance('slow', 'first');
    const second = await kernel.spawnInstance('slow', 'second');
    await kernel.hibernate(first);
    await kernel.hibernate(second);
    const woken = (): string[] => events.filter((e) => e.type === 'waking').map((e) => e.instance);
    assert.deepEqual(woken(), []);

    const { port } = new URL(kernel.url);
    const client = net.connect(Number(port), '127.0.0.1');
    client.on('error', () => {});
    client.write('GET /echo HTTP/1.1\r\nHost: slow.localhost\r\n\r\n');
    await waitFor(() => woken().length === 1, 'a first candidate to wake', 15_000);
    client.destroy();
    // The first wake goes on (a start is not abandoned); nothing asks for the second.
    const [waking] = woken();
    const firstUp = waking === 'slow:first' ? first : second;
    await waitFor(() => firstUp.state === 'running', 'the first candidate to be up', 30_000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(woken(), [waking]);
  });
}

for (const fastPath of [true, false]) {
  const name = fastPath ? 'fast path' : 'node:http path';
  test(`${name}: a GET held by a run that crashes waits for the next run; a POST it held fails`, { timeout: 60_000 }, async (t) => {
    if (!fastPath) process.env.TENEMENT_FAST_PROXY = '0';
    let tracked: Awaited<ReturnType<typeof trackedKernel>>;
    try {
      tracked = await trackedKernel(t, { echo: echoService({ idleTimeout: false, restart: 'always', backoff: { base: '100ms' } }) });
    } finally {
      delete process.env.TENEMENT_FAST_PROXY;
    }
    const { kernel, events } = tracked;
    const instance = await kernel.spawnInstance('echo', 'a');
    const held = [request(kernel, 'a.echo.localhost', '/slow?ms=2000'), request(kernel, 'a.echo.localhost', '/slow?ms=2000', { method: 'POST' })];
    await waitFor(() => instance.inFlight === 2, 'both requests held by the instance', 15_000);
    // Answered, then the process exits with both requests unanswered: a crash, and the restart policy's restart.
    assert.equal((await request(kernel, 'a.echo.localhost', '/exit?code=1')).status, 200);
    const [get, post] = await Promise.all(held);
    // The GET is safe to send again: it waited for the instance's next run (one candidate, so nowhere else to go).
    assert.equal(get!.status, 200, get!.body);
    assert.equal(get!.body, 'slow');
    // The POST may have been acted on before the crash: never sent twice.
    assert.equal(post!.status, 502, post!.body);
    assert.equal(JSON.parse(post!.body).error.code, 'TNM_ERR_UPSTREAM_ERROR');
    assert.equal(events.filter((e) => e.type === 'spawned').length, 2, 'one restart served the GET');
    await waitFor(() => instance.inFlight === 0, 'nothing left in flight', 10_000);
  });
}
