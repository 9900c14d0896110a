// plugins/otel/plain-transport.ts against real collectors on loopback: a node:http collector that reads every
// body (exports share one kept-alive connection, each body arrives whole), and raw ones that answer 503 with
// Retry-After, 400 with a message, garbage, a huge body, nothing at all, or close the connection between
// exports or half-way. Every case ends in the answer the SDK's transport would give (success, retryable,
// failure), quickly: never a hang, a crash or an unbounded buffer.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import net from 'node:net';
import { test } from 'node:test';
import { OTLPExporterError, type ExportResponse } from '@opentelemetry/otlp-exporter-base';
import { exportHead, PlainHttpTransport, plainEndpoint, retrying, retryAfterMs } from '../../plugins/otel/plain-transport.ts';

const HEADERS = async (): Promise<Record<string, string>> => ({ 'Content-Type': 'application/x-protobuf', 'x-api-key': 'k1' });

interface Received {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: Buffer;
  connection: net.Socket;
}

async function collector(answer: (request: Received) => { status: number; body?: string; headers?: Record<string, string> }) {
  const received: Received[] = [];
  const connections = new Set<net.Socket>();
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const got: Received = { method: request.method!, url: request.url!, headers: request.headers, body: Buffer.concat(chunks), connection: request.socket };
      received.push(got);
      const { status, body = '', headers = {} } = answer(got);
      response.writeHead(status, headers).end(body);
    });
  });
  server.on('connection', (socket) => connections.add(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    received,
    connections,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** A raw TCP collector: `answer` gets each connection's socket once a request head has arrived. */
async function rawCollector(answer: (socket: net.Socket, nth: number) => void) {
  const sockets = new Set<net.Socket>();
  let requests = 0;
  let connections = 0;
  const server = net.createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let seen = '';
    socket.on('data', (chunk) => {
      seen += chunk.toString('latin1');
      // One answer per request head; bodies are small here and never hold a blank line of their own.
      while (seen.includes('\r\n\r\n')) {
        seen = seen.slice(seen.indexOf('\r\n\r\n') + 4).replace(/^[^P]*/, '');
        answer(socket, requests++);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1/traces`,
    requests: () => requests,
    connections: () => connections,
    close: () => new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      server.close(() => resolve());
    }),
  };
}

function transportFor(url: string, headers = HEADERS): PlainHttpTransport {
  const endpoint = plainEndpoint(url, 'none');
  assert.ok(endpoint, url);
  return new PlainHttpTransport(endpoint, headers);
}

const body = (size: number, fill = 7): Uint8Array => new Uint8Array(size).fill(fill);

test('exports share one kept-alive connection, each body arriving whole with the configured headers', async () => {
  const server = await collector(() => ({ status: 200, body: 'ok' }));
  const transport = transportFor(server.url);
  try {
    for (const size of [10, 600_000, 3, 2_000_000]) {
      const result = await transport.send(body(size, size % 251), 5_000);
      assert.equal(result.status, 'success');
      assert.equal(Buffer.from((result as { data: Uint8Array }).data).toString(), 'ok');
    }
    assert.equal(server.received.length, 4);
    assert.equal(server.connections.size, 1, 'one connection for every export');
    for (const [i, size] of [10, 600_000, 3, 2_000_000].entries()) {
      const got = server.received[i]!;
      assert.equal(got.method, 'POST');
      assert.equal(got.url, '/v1/traces');
      assert.equal(got.body.length, size);
      assert.ok(got.body.every((byte) => byte === size % 251));
      assert.equal(got.headers['content-type'], 'application/x-protobuf');
      assert.equal(got.headers['x-api-key'], 'k1');
      assert.equal(got.headers.host, new URL(server.url).host);
      assert.match(String(got.headers['user-agent']), /^OTel-OTLP-Exporter-JavaScript/);
    }
  } finally {
    transport.shutdown();
    await server.close();
  }
});

test('the collector closing the kept connection between exports costs nothing: the next export opens another', async () => {
  const server = await collector(() => ({ status: 200 }));
  const transport = transportFor(server.url);
  try {
    assert.equal((await transport.send(body(100), 5_000)).status, 'success');
    for (const socket of server.connections) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal((await transport.send(body(100), 5_000)).status, 'success');
    assert.equal(server.received.length, 2);
  } finally {
    transport.shutdown();
    await server.close();
  }
});

test('`Connection: close` from the collector: the answer counts, the connection is not reused', async () => {
  const server = await collector(() => ({ status: 200, headers: { connection: 'close' } }));
  const transport = transportFor(server.url);
  try {
    for (let i = 0; i < 3; i++) assert.equal((await transport.send(body(50), 5_000)).status, 'success');
    assert.equal(server.connections.size, 3);
  } finally {
    transport.shutdown();
    await server.close();
  }
});

test('429, 502, 503 and 504 are retryable with the Retry-After given; 400 fails with the collector\'s status and message', async () => {
  let next = [503, 429, 400, 502, 504];
  const server = await collector(() => {
    const status = next.shift()!;
    return status === 400 ? { status, body: 'bad spans' } : { status, headers: { 'retry-after': '2' } };
  });
  const transport = transportFor(server.url);
  try {
    const results: ExportResponse[] = [];
    for (let i = 0; i < 5; i++) results.push(await transport.send(body(20), 5_000));
    assert.deepEqual(results.map((r) => r.status), ['retryable', 'retryable', 'failure', 'retryable', 'retryable']);
    assert.equal((results[0] as { retryInMillis?: number }).retryInMillis, 2_000);
    const failure = results[2] as { error: OTLPExporterError };
    assert.ok(failure.error instanceof OTLPExporterError);
    assert.equal(failure.error.code, 400);
    assert.equal(failure.error.data, 'bad spans');
    assert.equal(server.connections.size, 1, 'error answers keep the connection');
  } finally {
    next = [];
    transport.shutdown();
    await server.close();
  }
});

test('retrying(): a 503 then a 200 is one success after the collector\'s Retry-After; a deadline shorter than the wait gives up', async () => {
  let answers = [503, 200];
  const server = await collector(() => ({ status: answers.shift() ?? 200, headers: { 'retry-after': '1' } }));
  const transport = retrying(transportFor(server.url));
  try {
    const started = Date.now();
    assert.equal((await transport.send(body(30), 5_000)).status, 'success');
    const waited = Date.now() - started;
    assert.ok(waited >= 900 && waited < 4_000, `waited ${waited} ms`);
    assert.equal(server.received.length, 2);
    answers = [503];
    const quick = Date.now();
    assert.equal((await transport.send(body(30), 500)).status, 'retryable', 'Retry-After (1 s) is past the 500 ms deadline');
    assert.ok(Date.now() - quick < 900);
  } finally {
    transport.shutdown();
    await server.close();
  }
});

test('hostile collectors: garbage, conflicting framing, a huge body, a close half-way, silence: a clear result each, quickly', async () => {
  const cases: Array<{ name: string; answer: (socket: net.Socket) => void; status: ExportResponse['status']; error?: RegExp }> = [
    { name: 'garbage', answer: (s) => s.end('SSH-2.0-OpenSSH\r\n\r\n'), status: 'failure', error: /not an HTTP\/1\.x status line/ },
    { name: 'both framings', answer: (s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nok'), status: 'failure', error: /both Content-Length/ },
    { name: 'a 5 MiB answer', answer: (s) => s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${5 * 1024 * 1024}\r\n\r\n`), status: 'failure', error: /exceeds 4194304 bytes/ },
    { name: 'closed half-way', answer: (s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'), status: 'retryable', error: /closed before the answer was complete/ },
    { name: 'reset', answer: (s) => s.resetAndDestroy(), status: 'retryable' },
    { name: 'silence', answer: () => {}, status: 'retryable', error: /timed out/ },
  ];
  for (const hostile of cases) {
    const server = await rawCollector(hostile.answer);
    const transport = transportFor(server.url);
    try {
      const started = Date.now();
      const result = await transport.send(body(64), 700);
      assert.equal(result.status, hostile.status, hostile.name);
      if (hostile.error) assert.match(String((result as { error?: Error }).error?.message), hostile.error, hostile.name);
      assert.ok(Date.now() - started < 3_000, `${hostile.name}: took ${Date.now() - started} ms`);
    } finally {
      transport.shutdown();
      await server.close();
    }
  }
});

test('an answer nobody asked for, sent on the idle connection, ends that connection; the next export still succeeds', async () => {
  const server = await rawCollector((socket) => {
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n');
    setTimeout(() => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 20);
  });
  const transport = transportFor(server.url);
  try {
    assert.equal((await transport.send(body(8), 2_000)).status, 'success');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal((await transport.send(body(8), 2_000)).status, 'success');
    assert.equal(server.requests(), 2);
    assert.equal(server.connections(), 2, 'the connection that spoke out of turn was not used again');
  } finally {
    transport.shutdown();
    await server.close();
  }
});

test('bytes after the answer in the same read: the answer counts, the out-of-step connection is not used again', async () => {
  const server = await rawCollector((socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n'));
  const transport = transportFor(server.url);
  try {
    assert.equal((await transport.send(body(8), 2_000)).status, 'success');
    assert.equal((await transport.send(body(8), 2_000)).status, 'success', 'the stray 500 is not taken for the next answer');
    assert.equal(server.connections(), 2);
  } finally {
    transport.shutdown();
    await server.close();
  }
});

test('a collector that is not there: retryable (ECONNREFUSED), nothing thrown', async () => {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const transport = transportFor(`http://127.0.0.1:${port}/v1/traces`);
  const result = await transport.send(body(8), 2_000);
  assert.equal(result.status, 'retryable');
  assert.equal(((result as { error: NodeJS.ErrnoException }).error).code, 'ECONNREFUSED');
  transport.shutdown();
});

test('a configured header with a line break fails the export and sends nothing', async () => {
  const server = await rawCollector((socket) => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
  const transport = transportFor(server.url, async () => ({ 'x-api-key': 'k1\r\nX-Injected: yes' }));
  try {
    const result = await transport.send(body(8), 2_000);
    assert.equal(result.status, 'failure');
    assert.match(String((result as { error: Error }).error.message), /x-api-key.*line break/);
    assert.equal(server.requests(), 0);
  } finally {
    transport.shutdown();
    await server.close();
  }
});

test('plainEndpoint: plain http without compression only; the head is the request line, Host, the headers and a User-Agent', () => {
  assert.equal(plainEndpoint('https://collector:4318/v1/traces', 'none'), null);
  assert.equal(plainEndpoint('http://collector:4318/v1/traces', 'gzip'), null);
  assert.equal(plainEndpoint('http://user:secret@collector:4318/v1/traces', 'none'), null);
  const v6 = plainEndpoint('http://[::1]:4318/v1/traces?x=1', 'none')!;
  assert.equal(v6.host, '::1');
  assert.equal(v6.port, 4318);
  const plain = plainEndpoint('http://collector/v1/traces', 'none')!;
  assert.equal(plain.port, 80);
  assert.equal(
    exportHead(plain, { 'Content-Type': 'application/json', Host: 'evil', 'content-length': '1', connection: 'close' }, 'mine/1'),
    'POST /v1/traces HTTP/1.1\r\nHost: collector\r\nContent-Type: application/json\r\nUser-Agent: mine/1 OTel-OTLP-Exporter-JavaScript (tenement)\r\n',
  );
  assert.equal(exportHead(v6, {}).split('\r\n')[0], 'POST /v1/traces?x=1 HTTP/1.1');
});

test('retryAfterMs reads seconds and HTTP dates as the SDK does', () => {
  assert.equal(retryAfterMs(undefined), undefined);
  assert.equal(retryAfterMs('3'), 3_000);
  assert.equal(retryAfterMs('0'), -1);
  assert.equal(retryAfterMs('Wed, 21 Oct 2015 07:28:00 GMT'), 0);
  const inFuture = retryAfterMs(new Date(Date.now() + 60_000).toUTCString())!;
  assert.ok(inFuture > 50_000 && inFuture <= 60_000, String(inFuture));
});
