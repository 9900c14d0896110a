// cli/plain-http.ts against real servers on loopback: node:http answering in every framing (Content-Length,
// chunked, up to the close, on TCP and on a Unix socket), and hostile raw servers that send garbage, a huge body,
// oversized headers, conflicting framing, nothing at all, or close half-way. Each hostile case must end in a clear
// AnswerError or AnswerTimeout, quickly: never a hang, never an unbounded buffer.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type RequestListener } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { AnswerError, AnswerParser, AnswerTimeout, exchange, MAX_HEAD_BYTES, type Endpoint } from '../../cli/plain-http.ts';

const GET = { method: 'GET', target: '/api/instances?service=web', host: 'localhost', headers: { accept: 'application/json' } };

async function httpServer(listener: RequestListener, socketPath?: string): Promise<{ endpoint: Endpoint; close: () => Promise<void> }> {
  const server = createHttpServer(listener);
  await new Promise<void>((resolve) => (socketPath ? server.listen(socketPath, resolve) : server.listen(0, '127.0.0.1', resolve)));
  const port = (server.address() as net.AddressInfo).port;
  return { endpoint: socketPath ? { socketPath } : { host: '127.0.0.1', port }, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** A raw TCP server that answers each connection's request with `answer` (after the request's head arrived). */
async function rawServer(answer: (socket: net.Socket) => void): Promise<{ endpoint: Endpoint; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let head = '';
    socket.on('data', (chunk) => {
      if (head.includes('\r\n\r\n')) return;
      head += chunk.toString('latin1');
      if (head.includes('\r\n\r\n')) answer(socket);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    endpoint: { host: '127.0.0.1', port },
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

test('reads answers framed by Content-Length and chunked, and an empty 204; sends method, path, headers and body', async () => {
  const seen: string[] = [];
  const body = JSON.stringify({ instances: [{ key: 'web:ä' }] });
  const { endpoint, close } = await httpServer((req, res) => {
    let sent = '';
    req.on('data', (chunk: Buffer) => (sent += chunk.toString('utf8')));
    req.on('end', () => {
      seen.push(`${req.method} ${req.url} ${req.headers.host} ${req.headers.authorization ?? '-'} ${sent}`);
      if (req.url!.startsWith('/chunked')) {
        res.write(body.slice(0, 5));
        setTimeout(() => res.end(body.slice(5)), 20);
      } else if (req.url!.startsWith('/empty')) {
        res.statusCode = 204;
        res.end();
      } else {
        res.setHeader('content-length', Buffer.byteLength(body));
        res.end(body);
      }
    });
  });
  try {
    assert.deepEqual(await exchange(endpoint, GET, { timeoutMs: 5000 }), { status: 200, text: body });
    assert.deepEqual(await exchange(endpoint, { ...GET, target: '/chunked' }, { timeoutMs: 5000 }), { status: 200, text: body });
    assert.deepEqual(await exchange(endpoint, { ...GET, target: '/empty' }, { timeoutMs: 5000 }), { status: 204, text: '' });
    const post = { ...GET, method: 'POST', target: '/post', headers: { authorization: 'Bearer t0k' }, body: '{"a":"é"}' };
    assert.equal((await exchange(endpoint, post, { timeoutMs: 5000 })).status, 200);
    assert.equal(seen[0], 'GET /api/instances?service=web localhost - ');
    assert.equal(seen.at(-1), 'POST /post localhost Bearer t0k {"a":"é"}');
  } finally {
    await close();
  }
});

test('reaches a server on a Unix socket; a socket nobody listens on is the connection error (ENOENT, ECONNREFUSED)', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tenement-plain-http-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const socketPath = path.join(dir, 'api.sock');
  const { endpoint, close } = await httpServer((_req, res) => res.end('{"ok":true}'), socketPath);
  try {
    assert.deepEqual(await exchange(endpoint, GET, { timeoutMs: 5000 }), { status: 200, text: '{"ok":true}' });
  } finally {
    await close();
  }
  await assert.rejects(exchange({ socketPath: path.join(dir, 'none.sock') }, GET, { timeoutMs: 5000 }), { code: 'ENOENT' });
  await assert.rejects(exchange({ host: '127.0.0.1', port: 1 }, GET, { timeoutMs: 5000 }), { code: 'ECONNREFUSED' });
});

/** Hostile answers, each with the error it must end in. */
const HOSTILE: Array<{ name: string; send: (socket: net.Socket) => void; error: RegExp }> = [
  { name: 'garbage', send: (s) => s.end('SSH-2.0-OpenSSH_9.6\r\n\r\n'), error: /not an HTTP\/1\.x status line/ },
  { name: 'binary noise', send: (s) => s.end(Buffer.from([0, 1, 2, 255, 13, 10, 13, 10])), error: /not an HTTP\/1\.x status line/ },
  { name: 'a malformed header', send: (s) => s.end('HTTP/1.1 200 OK\r\nno colon here\r\n\r\n'), error: /malformed header line/ },
  { name: 'a folded header', send: (s) => s.end('HTTP/1.1 200 OK\r\nx-a: 1\r\n  folded\r\n\r\n'), error: /malformed header line/ },
  { name: 'a bad Content-Length', send: (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: -5\r\n\r\n'), error: /bad Content-Length/ },
  { name: 'two Content-Lengths', send: (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\nab'), error: /bad Content-Length/ },
  { name: 'both framings', send: (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n'), error: /both Content-Length and Transfer-Encoding/ },
  { name: 'gzip', send: (s) => s.end('HTTP/1.1 200 OK\r\ntransfer-encoding: gzip\r\n\r\n'), error: /unsupported Transfer-Encoding/ },
  { name: 'an unrequested encoding', send: (s) => s.end('HTTP/1.1 200 OK\r\ncontent-encoding: br\r\ncontent-length: 1\r\n\r\nx'), error: /unrequested Content-Encoding/ },
  { name: 'a body cut short', send: (s) => s.end('HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"instances":'), error: /closed before the answer was complete \(body cut short\)/ },
  { name: 'headers cut short', send: (s) => s.end('HTTP/1.1 200 OK\r\ncontent-le'), error: /closed before the answer was complete \(no complete status line/ },
  { name: 'a close before a byte', send: (s) => s.end(), error: /closed before the answer was complete/ },
  { name: 'a reset', send: (s) => s.resetAndDestroy(), error: /ECONNRESET|closed before the answer/ },
  { name: 'a chunk longer than its size', send: (s) => s.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n'), error: /chunk is longer than its size/ },
  { name: 'a bad chunk size', send: (s) => s.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n'), error: /malformed chunk-size line/ },
  { name: 'chunks cut short', send: (s) => s.end('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab'), error: /body cut short/ },
  { name: 'an upgrade nobody asked for', send: (s) => s.end('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n'), error: /unexpected 101 answer/ },
  // Oversized: refused as soon as the limit is passed, not after buffering whatever the server sends.
  { name: 'endless headers', send: (s) => endless(s, 'HTTP/1.1 200 OK\r\n', 'x-pad: ' + 'a'.repeat(1000) + '\r\n'), error: new RegExp(`status line and headers: more than ${MAX_HEAD_BYTES} bytes`) },
  { name: 'a huge declared body', send: (s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 999999999999\r\n\r\n'), error: /body exceeds 1048576 bytes/ },
  { name: 'a huge chunk', send: (s) => s.write('HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nffffffff\r\n'), error: /body exceeds 1048576 bytes/ },
  { name: 'an endless body up to the close', send: (s) => endless(s, 'HTTP/1.1 200 OK\r\n\r\n', 'x'.repeat(64 * 1024)), error: /body exceeds 1048576 bytes/ },
  { name: 'endless small chunks', send: (s) => endless(s, 'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n', '400\r\n' + 'y'.repeat(1024) + '\r\n'), error: /body exceeds 1048576 bytes/ },
];

/** Writes `head`, then `piece` for as long as the connection is open (a server that never stops). */
function endless(socket: net.Socket, head: string, piece: string): void {
  socket.write(head);
  const more = (): void => {
    while (!socket.destroyed && socket.write(piece));
    if (!socket.destroyed) socket.once('drain', more);
  };
  more();
}

for (const hostile of HOSTILE) {
  test(`a server that sends ${hostile.name} ends in a clear error, quickly`, { timeout: 10_000 }, async () => {
    const { endpoint, close } = await rawServer(hostile.send);
    try {
      await assert.rejects(exchange(endpoint, GET, { timeoutMs: 5000, maxBodyBytes: 1024 * 1024 }), (error: Error) => {
        assert.match(`${error.message} ${(error as NodeJS.ErrnoException).code ?? ''}`, hostile.error);
        return true;
      });
    } finally {
      await close();
    }
  });
}

test('a server that accepts and never answers (or stalls mid-body) is an AnswerTimeout, not a hang', { timeout: 10_000 }, async () => {
  const silent = await rawServer(() => {});
  const stalled = await rawServer((s) => s.write('HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc'));
  try {
    const started = Date.now();
    await assert.rejects(exchange(silent.endpoint, GET, { timeoutMs: 300 }), AnswerTimeout);
    await assert.rejects(exchange(stalled.endpoint, GET, { timeoutMs: 300 }), AnswerTimeout);
    assert.ok(Date.now() - started < 5000);
  } finally {
    await silent.close();
    await stalled.close();
  }
});

test('an HTTP/1.0 answer without framing is read up to the close', async () => {
  const { endpoint, close } = await rawServer((s) => s.end('HTTP/1.0 200 OK\r\ncontent-type: application/json\r\n\r\n{"instances":[]}'));
  try {
    assert.deepEqual(await exchange(endpoint, GET, { timeoutMs: 5000 }), { status: 200, text: '{"instances":[]}' });
  } finally {
    await close();
  }
});

test('100 Continue before the answer is skipped; a header value with a line break is refused before sending', async () => {
  const { endpoint, close } = await rawServer((s) => s.end('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'));
  try {
    assert.deepEqual(await exchange(endpoint, GET, { timeoutMs: 5000 }), { status: 200, text: 'ok' });
    await assert.rejects(exchange(endpoint, { ...GET, headers: { authorization: 'Bearer a\r\nx-injected: 1' } }, { timeoutMs: 5000 }), AnswerError);
  } finally {
    await close();
  }
});

test('the parser reads an answer split at every byte boundary the same as whole', () => {
  const wire = Buffer.from('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nx-trailer: 1\r\n\r\n');
  for (let size = 1; size <= wire.length; size++) {
    const parser = new AnswerParser();
    let done = false;
    for (let at = 0; at < wire.length; at += size) done = parser.push(wire.subarray(at, at + size));
    assert.ok(done, `split every ${size} bytes`);
    assert.equal(parser.status, 200);
    assert.equal(parser.text(), 'abcde');
  }
});
