// The fast path's upstream pool over real loopback sockets: reuse of a released connection, the idle sweep
// (one pool timer, not one per connection per request), and a pinned socket keeping its own connections.
import assert from 'node:assert/strict';
import net, { type AddressInfo } from 'node:net';
import { once } from 'node:events';
import test from 'node:test';
import { UpstreamPool, type UpstreamConnection, type UpstreamOwner } from '../../core/dataplane/upstream-pool.ts';
import type { UpstreamAddress } from '../../core/types.ts';

const owner: UpstreamOwner = {
  onUpstreamData() {},
  onUpstreamEnd() {},
  onUpstreamError() {},
  onUpstreamClose() {},
  onUpstreamConnect() {},
};

async function server(t: test.TestContext): Promise<{ address: UpstreamAddress; accepted: () => number }> {
  let accepted = 0;
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  t.after(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise<void>((resolve) => srv.close(() => resolve()));
  });
  return { address: { host: '127.0.0.1', port: (srv.address() as AddressInfo).port }, accepted: () => accepted };
}

async function connected(connection: UpstreamConnection): Promise<void> {
  if (!connection.connected) await once(connection.socket, 'connect');
}

test('a released connection is reused for the same address, a fresh one made for another', async (t) => {
  const pool = new UpstreamPool(60_000);
  t.after(() => pool.close());
  const a = await server(t);
  const b = await server(t);
  const first = pool.acquire(a.address, owner);
  await connected(first);
  pool.release(first);
  const again = pool.acquire({ ...a.address }, owner);
  assert.equal(again, first, 'same host:port, another address object: the same idle connection');
  assert.equal(again.reused, true);
  const other = pool.acquire(b.address, owner);
  assert.notEqual(other, first);
  await connected(other);
  assert.equal(a.accepted(), 1);
  assert.equal(b.accepted(), 1);
});

test('idle connections close after idleMs, within one sweep; a connection in use is never swept', { timeout: 30_000 }, async (t) => {
  const pool = new UpstreamPool(600);
  t.after(() => pool.close());
  const { address } = await server(t);
  const idle = pool.acquire(address, owner);
  const busy = pool.acquire(address, owner);
  await Promise.all([connected(idle), connected(busy)]);
  const releasedAt = Date.now();
  pool.release(idle);
  await once(idle.socket, 'close');
  const idleFor = Date.now() - releasedAt;
  assert.ok(idleFor >= 550, `closed after ${idleFor} ms idle, before idleMs`);
  assert.ok(idleFor < 10_000, `closed after ${idleFor} ms`);
  assert.equal(busy.socket.destroyed, false, 'the connection in use stays open');
  // The swept connection is gone from the pool: the next acquire connects anew.
  const next = pool.acquire(address, owner);
  assert.notEqual(next, idle);
  assert.notEqual(next, busy);
  next.socket.destroy();
  busy.socket.destroy();
});

test('a reused connection is not swept for the idle time it had before', { timeout: 30_000 }, async (t) => {
  const pool = new UpstreamPool(1_000);
  t.after(() => pool.close());
  const { address } = await server(t);
  const connection = pool.acquire(address, owner);
  await connected(connection);
  // Released and taken back every 200 ms for 2.4 s: never idle for 1 s, so never closed.
  for (let i = 0; i < 12; i++) {
    pool.release(connection);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(pool.acquire(address, owner), connection, `round ${i}: still pooled`);
  }
  assert.equal(connection.socket.destroyed, false);
  connection.socket.destroy();
});

test('once its socket is pinned, an address keys connections apart from the unpinned path', async (t) => {
  const pool = new UpstreamPool(60_000);
  t.after(() => pool.close());
  const { address } = await server(t);
  const first = pool.acquire(address, owner);
  await connected(first);
  pool.release(first);
  // The supervisor pins a socket on the same object: a connection made before the pin is not this run's.
  address.pinnedPath = '/nonexistent/pinned.sock';
  const after = pool.acquire(address, owner);
  assert.notEqual(after, first);
  await once(after.socket, 'error');
  after.socket.destroy();
});
