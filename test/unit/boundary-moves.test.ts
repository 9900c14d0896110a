// BoundaryMoves (core/dataplane/boundary-moves.ts): how many connections a spill takes at request boundaries, to
// whom, and until when. The e2e side (real sockets moving between processes) is test/e2e/proxy-workers-spill-busy.
import assert from 'node:assert/strict';
import type net from 'node:net';
import { test } from 'node:test';
import { BoundaryMoves, type MovableConnection } from '../../core/dataplane/boundary-moves.ts';

function connection(movable = true): MovableConnection & { released: boolean } {
  return {
    socket: {} as net.Socket,
    movable,
    released: false,
    release() {
      this.released = true;
    },
  };
}

test('boundary moves: at most the count wanted, only movable connections, released before they are sent', () => {
  const moves = new BoundaryMoves();
  const sent: net.Socket[] = [];
  moves.want(2, (socket) => sent.push(socket), 10_000);
  const busy = connection(false);
  assert.equal(moves.take(busy), false, 'read ahead or still writing: stays');
  assert.equal(busy.released, false);
  const [a, b, c] = [connection(), connection(), connection()];
  assert.equal(moves.take(a), true);
  assert.equal(moves.take(b), true);
  assert.equal(moves.wanted, 0);
  assert.equal(moves.take(c), false, 'past the count');
  assert.equal(c.released, false);
  assert.deepEqual(sent, [a.socket, b.socket]);
  assert.ok(a.released && b.released);
});

test('boundary moves: a want expires, is replaced by the next, and is cancelled', async () => {
  const moves = new BoundaryMoves();
  const first: net.Socket[] = [];
  moves.want(5, (socket) => first.push(socket), 20);
  await new Promise((resolve) => setTimeout(resolve, 40));
  assert.equal(moves.take(connection()), false, 'expired');
  assert.equal(moves.wanted, 0, 'an expired want is dropped');
  const second: net.Socket[] = [];
  moves.want(5, (socket) => first.push(socket), 10_000);
  moves.want(1, (socket) => second.push(socket), 10_000);
  assert.equal(moves.take(connection()), true);
  assert.equal(moves.take(connection()), false);
  assert.deepEqual([first.length, second.length], [0, 1]);
  moves.want(3, (socket) => second.push(socket), 10_000);
  moves.cancel();
  assert.equal(moves.take(connection()), false);
  moves.want(0, (socket) => second.push(socket), 10_000);
  assert.equal(moves.wanted, 0, 'wanting none is a cancel');
});
