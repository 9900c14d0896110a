// proxy.accept 'spill' with connections that are never idle when looked at (a front proxy's pool, a load
// generator): the spilled worker's share moves at each connection's next request boundary (core/dataplane/
// boundary-moves.ts). The clients here send each request as soon as the previous answer ends, to a backend that
// takes 10 ms, so at the moment of the spill almost none is idle: without boundary moves the worker would get
// next to none of them. Steered by hand, so the host's load cannot change the outcome.
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import { FIXTURES, request, servePlugins, sleep, waitFor } from '../helpers.ts';

const HOST = 'a.count.localhost';
const countService = { command: `node ${path.join(FIXTURES, 'count-app.mjs')}`, health: '/health' };

interface BusyClient {
  sent: number;
  answered: number;
  /** Local ports of the sockets the requests went on: one, when the connection was never replaced. */
  ports: Set<number>;
  errors: string[];
  done: Promise<void>;
}

/** Requests back to back on one kept-alive connection until `stop()`; each answer must be its own request's. */
function busyClient(url: string, name: string, stopped: () => boolean): BusyClient {
  const base = new URL(url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const client: BusyClient = { sent: 0, answered: 0, ports: new Set(), errors: [], done: Promise.resolve() };
  const one = (i: number): Promise<void> =>
    new Promise((resolve) => {
      const id = `${name}-${i}`;
      const chunked = i % 2 === 1 ? '&chunked=1' : '';
      client.sent++;
      const req = http.get({ host: base.hostname, port: base.port, path: `/n?id=${id}&ms=10${chunked}`, headers: { host: HOST }, agent, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => {
          if (res.statusCode !== 200 || body !== `id=${id}`) client.errors.push(`${id}: ${res.statusCode} ${body}`);
          else client.answered++;
          resolve();
        });
      });
      req.on('socket', (socket: net.Socket) => {
        const record = (): void => void client.ports.add(socket.localPort ?? -1);
        if (socket.connecting) socket.once('connect', record);
        else record();
      });
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', (error) => {
        client.errors.push(`${id}: ${error.message}`);
        resolve();
      });
    });
  client.done = (async () => {
    for (let i = 0; !stopped() && client.errors.length === 0; i++) await one(i);
    agent.destroy();
  })();
  return client;
}

/** Two requests in one write, again and again, on a raw socket: every answer whole and in order. */
function pipeliningClient(url: string, stopped: () => boolean): { answered: number; errors: string[]; done: Promise<void> } {
  const state = { answered: 0, errors: [] as string[], done: Promise.resolve() };
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1');
  let received = '';
  let expected: string[] = [];
  let next = 0;
  let wake: (() => void) | null = null;
  socket.setEncoding('latin1');
  socket.on('data', (chunk: string) => {
    received += chunk;
    for (;;) {
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) return;
      const head = received.slice(0, end);
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? NaN);
      if (!head.startsWith('HTTP/1.1 200') || !Number.isInteger(length)) state.errors.push(`bad head: ${JSON.stringify(head)}`);
      if (received.length < end + 4 + length) return;
      const body = received.slice(end + 4, end + 4 + length);
      received = received.slice(end + 4 + length);
      const want = expected.shift();
      if (body !== `id=${want}`) state.errors.push(`expected id=${want}, got ${JSON.stringify(body)}`);
      else state.answered++;
      if (expected.length === 0) wake?.();
    }
  });
  socket.on('error', (error) => state.errors.push(error.message));
  socket.on('close', () => wake?.());
  state.done = (async () => {
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    while (!stopped() && state.errors.length === 0 && !socket.destroyed) {
      expected = [`p-${next}`, `p-${next + 1}`];
      const req = (id: string): string => `GET /n?id=${id}&ms=5 HTTP/1.1\r\nhost: ${HOST}\r\n\r\n`;
      const answered = new Promise<void>((resolve) => (wake = resolve));
      socket.write(req(expected[0]!) + req(expected[1]!));
      next += 2;
      await answered;
      if (expected.length > 0) state.errors.push(`connection closed with ${expected.length} answers owed`);
    }
    socket.destroy();
  })();
  return state;
}

async function backendStats(kernel: TestKernel): Promise<{ total: number; duplicates: number }> {
  const reply = await request(kernel, HOST, '/stats');
  assert.equal(reply.status, 200, reply.body);
  return JSON.parse(reply.body) as { total: number; duplicates: number };
}

async function workerConnections(kernel: TestKernel): Promise<number> {
  await kernel.server.proxyWorkersSynced();
  return kernel.server.proxyWorkers().connections;
}

test('proxy.accept spill: connections busy without pause move to the spilled worker at a request boundary, on the same sockets, nothing lost or duplicated', { timeout: 120_000 }, async (t) => {
  const kernel = await createTestKernel({
    plugins: servePlugins,
    config: { settings: { proxy: { workers: 2, accept: 'spill' } }, services: { count: countService } },
  });
  t.after(() => kernel.close());
  kernel.server.steerProxyWorkers('park');
  await kernel.spawnInstance('count', 'a');
  await waitFor(async () => (await workerConnections(kernel)) === 0 && kernel.server.proxyWorkers().accepting === 0, 'the worker to be parked');

  let stop = false;
  const clients = Array.from({ length: 7 }, (_, i) => busyClient(kernel.url, `c${i}`, () => stop));
  const pipelining = pipeliningClient(kernel.url, () => stop);
  await waitFor(() => clients.every((client) => client.answered >= 5) && pipelining.answered >= 10, 'every client to be busy');
  assert.equal(await workerConnections(kernel), 0, 'a parked worker is given no connection');
  const servedBefore = kernel.server.proxyWorkers().requests;

  assert.equal(kernel.server.steerProxyWorkers('spill'), true);
  // Half of the 8 connections (two processes accept), though almost none was idle when the worker spilled.
  await waitFor(async () => (await workerConnections(kernel)) === 4, 'the busy connections to move', 5_000);
  const answeredAtMove = clients.reduce((sum, client) => sum + client.answered, 0);
  await waitFor(() => clients.reduce((sum, client) => sum + client.answered, 0) >= answeredAtMove + 100, 'more requests on the moved connections');
  // Bounded: the share, and no more, however long the clients stay busy (the want also expires).
  await sleep(700);
  assert.equal(await workerConnections(kernel), 4, 'no more than the share moved');
  assert.ok(kernel.server.proxyWorkers().requests > servedBefore, 'the worker serves the moved connections');

  // Parked (it keeps its 4) and spilled to again: it already holds its share, so nothing more moves. Measured
  // against the kernel's connections alone, half of the kernel's 4 would go too, and a pool would drift onto the
  // worker spill after spill.
  assert.equal(kernel.server.steerProxyWorkers('park'), true);
  await sleep(300);
  assert.equal(await workerConnections(kernel), 4, 'parking keeps the connections');
  assert.equal(kernel.server.steerProxyWorkers('spill'), true);
  await sleep(700);
  assert.equal(await workerConnections(kernel), 4, 'a worker holding its share is given no more');

  stop = true;
  await Promise.all([...clients.map((client) => client.done), pipelining.done]);
  for (const client of clients) {
    assert.deepEqual(client.errors, []);
    assert.equal(client.answered, client.sent, 'every request answered');
    assert.equal(client.ports.size, 1, 'one connection throughout: moved, not replaced');
  }
  assert.deepEqual(pipelining.errors, []);
  const sent = clients.reduce((sum, client) => sum + client.sent, 0) + pipelining.answered;
  const stats = await backendStats(kernel);
  assert.equal(stats.duplicates, 0, 'no request reached the backend twice');
  assert.equal(stats.total, sent, 'every request reached the backend once');
});
