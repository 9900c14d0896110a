import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ChunkedScanner } from '../../core/dataplane/chunked.ts';
import { bodilessResponse, parseRequestHead, parseResponseHead, serializeHead } from '../../core/dataplane/http1.ts';
import { forwardedRequestHead, forwardedResponseHead } from '../../core/dataplane/forwarded-head.ts';

const head = (text: string) => {
  const buffer = Buffer.from(text, 'latin1');
  return [buffer, buffer.indexOf('\r\n\r\n')] as const;
};
const request = (text: string) => parseRequestHead(...head(text));
const response = (text: string) => parseResponseHead(...head(text));
const accepted = <T>(result: T | string | null): T => {
  assert.ok(result !== null && typeof result !== 'string', String(result));
  return result;
};

test('request heads: method, target, raw headers and framing', () => {
  const parsed = request('POST /notes?x=1 HTTP/1.1\r\nHost: a.notes.localhost\r\nContent-Length: 12\r\nX-Thing:  spaced  \r\nConnection: close\r\n\r\n');
  assert.deepEqual(parsed, {
    method: 'POST',
    target: '/notes?x=1',
    raw: ['Host', 'a.notes.localhost', 'Content-Length', '12', 'X-Thing', 'spaced', 'Connection', 'close'],
    host: 'a.notes.localhost',
    contentLength: 12,
    chunked: false,
    close: true,
    kept: [0, 91],
  });
  const chunked = request('PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n');
  assert.equal(accepted(chunked).chunked, true);
  assert.equal(accepted(chunked).contentLength, -1);
});

test('request heads the fast path leaves to node:http', () => {
  for (const text of [
    'GET / HTTP/1.0\r\nHost: h\r\n\r\n', // HTTP/1.0
    'GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n', // absolute form naming its Host
    'OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n',
    'CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n',
  ]) {
    assert.equal(request(text), null, JSON.stringify(text));
  }
});

test('request heads the fast path refuses (answered 400 TNM_ERR_BAD_REQUEST_FRAMING)', () => {
  for (const text of [
    'GET http://other/ HTTP/1.1\r\nHost: h\r\n\r\n', // absolute form naming another host
    'GET / HTTP/2.0\r\nHost: h\r\n\r\n',
    'GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: h\r\nX: a\nTransfer-Encoding: chunked\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \xa0chunked\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  folded\r\n\r\n', // obsolete line folding
    'GET / HTTP/1.1\r\nHost: h\r\nHost: i\r\n\r\n', // two hosts
    'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n', // smuggling shape
    'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n',
    'GET / HTTP/1.1\r\nBad Name: x\r\n\r\n',
    'get / HTTP/1.1\r\nHost: h\r\n\r\n',
  ]) {
    assert.equal(typeof request(text), 'string', JSON.stringify(text));
  }
});

test('response heads: status, reason, framing and persistence', () => {
  const created = accepted(response('HTTP/1.1 201 Created\r\nContent-Length: 5\r\nSet-Cookie:  a \r\n\r\n'));
  const { status, reason, raw, kept, contentLength, chunked, close } = created;
  assert.deepEqual({ status, reason, raw, kept, contentLength, chunked, close }, {
    status: 201, reason: 'Created', raw: ['Content-Length', '5', 'Set-Cookie', 'a'], kept: [8, 58], contentLength: 5, chunked: false, close: false,
  });
  // Its name/value pairs are read once, when first asked for.
  assert.equal(created.raw, raw);
  assert.equal(accepted(response('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n')).chunked, true);
  assert.equal(accepted(response('HTTP/1.0 200 OK\r\n\r\n')).close, true);
  assert.equal(accepted(response('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n')).close, false);
  assert.equal(accepted(response('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n')).close, true);
  assert.equal(accepted(response('HTTP/1.1 200\r\n\r\n')).reason, '');
  assert.equal(typeof response('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n'), 'string');
  assert.equal(typeof response('HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n'), 'string');
  assert.equal(typeof response('HTTP/2 200 OK\r\n\r\n'), 'string');
  assert.equal(typeof response('HTTP/1.1 2x0 OK\r\n\r\n'), 'string');
});

test('bodiless responses and head serialisation', () => {
  assert.ok(bodilessResponse('HEAD', 200));
  assert.ok(bodilessResponse('GET', 204));
  assert.ok(bodilessResponse('GET', 304));
  assert.ok(bodilessResponse('GET', 103));
  assert.ok(!bodilessResponse('GET', 200));
  assert.equal(serializeHead('HTTP/1.1 200 OK', ['A', 'b', 'Ü', 'é']).toString('latin1'), 'HTTP/1.1 200 OK\r\nA: b\r\nÜ: é\r\n\r\n');
});

test('chunked scanner finds the end across any split, with extensions and trailers', () => {
  const body = Buffer.from('5;ext=1\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: yes\r\n\r\nNEXT');
  const end = body.indexOf('NEXT');
  for (let split = 1; split < body.length; split++) {
    const scanner = new ChunkedScanner();
    const first = scanner.scan(body.subarray(0, split));
    const found = first !== -1 ? first : split + scanner.scan(body.subarray(split));
    assert.equal(found, end, `split at ${split}`);
    assert.equal(scanner.error, null);
  }
  for (const text of ['1;a\r\nx\r\n0\r\n\r\n', '1;a=b;c="d \\" e"\r\nx\r\n0\r\nT:\tv \r\nU: w\r\n\r\n']) {
    const scanner = new ChunkedScanner();
    assert.equal(scanner.scan(Buffer.from(text, 'latin1')), text.length, text);
    assert.equal(scanner.error, null);
  }
  const simple = new ChunkedScanner();
  assert.equal(simple.scan(Buffer.from('0\r\n\r\n')), 5);
  assert.ok(simple.done);
});

test('chunked scanner rejects broken framing', () => {
  for (const text of [
    'x\r\n', '5\r\nhelloXX', '5\nhello', 'ffffffffffffffff1\r\n',
    '1 \r\n', '1\t\r\n', '1;\r\n', '1; a\r\n', '1;a=\x01\r\n', '1;a\nb\r\n', '1;a="b"c\r\n', `1;${'a'.repeat(5000)}\r\n`,
    '1\r\nx\r\n0\r\nX: a\nb\r\n\r\n', '1\r\nx\r\n0\r\n X: a\r\n\r\n', '1\r\nx\r\n0\r\nX : a\r\n\r\n', '1\r\nx\r\n0\r\n\n',
    `1\r\nx\r\n0\r\nX: ${'a'.repeat(20_000)}\r\n\r\n`,
  ]) {
    const scanner = new ChunkedScanner();
    assert.equal(scanner.scan(Buffer.from(text)), -1);
    assert.ok(scanner.error, text);
  }
});

test('a response head forwarded as it came keeps its lines but the hop-by-hop ones, and says HTTP/1.1', () => {
  const text = 'HTTP/1.0 200 OK\r\nA: 1\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\nB:  2 \r\nTE: x\r\nTransfer-Encoding: chunked\r\nUpgrade: h2c\r\n\r\n';
  const source = Buffer.from(text, 'latin1');
  const parsed = accepted(parseResponseHead(source, text.indexOf('\r\n\r\n')));
  const forwarded = forwardedResponseHead(parsed, true, Buffer.from('5\r\nhello'), source).toString('latin1');
  assert.equal(forwarded, 'HTTP/1.1 200 OK\r\nA: 1\r\nB:  2 \r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello');
  // Connection naming another header to drop: rebuilt from the parsed headers instead.
  const listing = 'HTTP/1.1 200 OK\r\nConnection: X-Hop\r\nX-Hop: 1\r\nC: 3\r\nContent-Length: 0\r\n\r\n';
  const listed = accepted(parseResponseHead(Buffer.from(listing, 'latin1'), listing.indexOf('\r\n\r\n')));
  assert.equal(listed.kept, null);
  assert.equal(forwardedResponseHead(listed, false, undefined, Buffer.from(listing, 'latin1')).toString('latin1'), 'HTTP/1.1 200 OK\r\nC: 3\r\nContent-Length: 0\r\n\r\n');
});

test('a request head forwarded as it came keeps its lines but the hop-by-hop ones, then X-Forwarded-* as a rebuilt one says them', () => {
  const text = 'POST /a?b HTTP/1.1\r\nHost:  h.localhost \r\nConnection: keep-alive\r\nKeep-Alive: 5\r\nA:  1 \r\nTE: trailers\r\nTransfer-Encoding: chunked\r\nB: 2\r\n\r\n';
  const source = Buffer.from(text, 'latin1');
  const parsed = accepted(request(text));
  const kept = forwardedRequestHead(parsed, '10.0.0.9', undefined, source).toString('latin1');
  assert.equal(
    kept,
    'POST /a?b HTTP/1.1\r\nHost:  h.localhost \r\nA:  1 \r\nB: 2\r\nX-Forwarded-For: 10.0.0.9\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: h.localhost\r\nTransfer-Encoding: chunked\r\n\r\n',
  );
  // The rebuilt head says the same lines (whitespace around values aside).
  assert.equal(kept.replace(/: +/g, ': ').replace(/ \r\n/g, '\r\n'), forwardedRequestHead(parsed, '10.0.0.9').toString('latin1'));
  // Only the request line: the head's last CRLF is the blank line's.
  const bare = 'GET / HTTP/1.1\r\n\r\n';
  assert.equal(forwardedRequestHead(accepted(request(bare)), '::1', undefined, Buffer.from(bare)).toString('latin1'), 'GET / HTTP/1.1\r\nX-Forwarded-For: ::1\r\nX-Forwarded-Proto: http\r\n\r\n');
  // X-Forwarded-* of its own (merged) or Connection naming another header: rebuilt instead, even with a source.
  for (const other of ['X-Forwarded-For: 1.2.3.4', 'x-forwarded-proto: https', 'X-Forwarded-Host: o', 'Connection: X-Hop']) {
    const textOf = `GET / HTTP/1.1\r\nHost: h\r\n${other}\r\nX-Hop: 1\r\n\r\n`;
    const head = accepted(request(textOf));
    assert.equal(head.kept, null, other);
    assert.equal(forwardedRequestHead(head, '10.0.0.9', undefined, Buffer.from(textOf)).toString('latin1'), forwardedRequestHead(head, '10.0.0.9').toString('latin1'));
  }
  // An upstreamHeaders edit always gets the rebuilt head.
  const edited = forwardedRequestHead(parsed, '10.0.0.9', (headers) => headers.push('Traceparent', 't'), source).toString('latin1');
  assert.match(edited, /\r\nTraceparent: t\r\n\r\n$/);
});
