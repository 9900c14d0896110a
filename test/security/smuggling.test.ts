// The request smuggling and framing attacks of issue 18, against a real kernel and a lenient counting backend,
// on the fast path and (where the path matters) on node:http: each one is refused or framed so that one client
// request is one backend request, and no other client's bytes end up inside it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HOST, answers, backendStats, countingKernel, rawSend } from './smuggling-kernel.ts';

const paths = [
  { name: 'fast path', fast: true },
  { name: 'node:http path', fast: false },
];

test('Connection: content-length cannot strip the length of a forwarded body: the next visitor is not captured', { timeout: 60_000 }, async (t) => {
  for (const { name, fast } of paths) {
    const kernel = await countingKernel(t, fast);
    // The body is a request prefix that, read as a second request, would swallow the next request on the pooled
    // upstream connection: another visitor's, cookie included.
    const smuggled = `POST /capture HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 60\r\n\r\n`;
    const attack = `POST /store HTTP/1.1\r\nHost: ${HOST}\r\nConnection: content-length\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`;
    const stored = await rawSend(kernel, attack, (s) => s.endsWith('}'));
    const victim = await rawSend(kernel, `GET /secret HTTP/1.1\r\nHost: ${HOST}\r\nCookie: session=victim\r\n\r\n`, (s) => s.endsWith('}'));
    assert.match(stored.text, /"path":"\/store"/, `${name}: ${stored.text}`);
    assert.ok(stored.text.includes(JSON.stringify(smuggled).slice(1, -1)), `${name}: the app read the smuggled text as the body: ${stored.text}`);
    assert.match(victim.text, /"path":"\/secret"/, `${name}: the victim gets its own answer: ${victim.text}`);
    const stats = await backendStats(kernel);
    assert.ok(!stats.paths.includes('/capture'), `${name}: the backend never parsed the smuggled request: ${stats.paths.join(' ')}`);
    assert.ok(!stats.bodies.some((b) => b.includes('session=victim')), `${name}: no body holds the victim's request`);
  }
});

test("a tenant's response with Connection: content-length is a 502, never a forged response for a pipelined client", { timeout: 60_000 }, async (t) => {
  for (const { name, fast } of paths) {
    const kernel = await countingKernel(t, fast);
    const pipelined = `GET /__forge HTTP/1.1\r\nHost: ${HOST}\r\n\r\nGET /next HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
    const { text, closed } = await rawSend(kernel, pipelined, () => false);
    assert.ok(closed, name);
    assert.match(text, /^HTTP\/1\.1 502 /, `${name}: ${text}`);
    assert.match(text, /TNM_ERR_UPSTREAM_ERROR/);
    assert.ok(!text.includes('forged'), `${name}: the forged response never reaches the client: ${text}`);
  }
});

test('a bare LF inside a header value cannot smuggle Transfer-Encoding to a backend that accepts bare LF', { timeout: 60_000 }, async (t) => {
  for (const { name, fast } of paths) {
    const kernel = await countingKernel(t, fast);
    const hidden = `0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
    const attack = `POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\nTransfer-Encoding: chunked\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`;
    const before = await backendStats(kernel);
    const { text, closed } = await rawSend(kernel, attack, () => false);
    assert.ok(closed, name);
    assert.match(text, /^HTTP\/1\.1 400 /, `${name}: ${text}`);
    assert.match(text, /TNM_ERR_BAD_REQUEST_FRAMING/, name);
    const after = await backendStats(kernel);
    assert.equal(after.heads - before.heads, 1, `${name}: only the stats request reached the backend: ${after.paths.slice(-3).join(' ')}`);
  }
});

test('a request with only bare-LF line endings is answered 400 at once, not left to time out', { timeout: 60_000 }, async (t) => {
  for (const { name, fast } of paths) {
    const kernel = await countingKernel(t, fast);
    // Bounded well below the 30 s idle timeout the fast path used to wait for a CRLFCRLF that never came.
    const { text, timedOut } = await rawSend(kernel, `GET / HTTP/1.1\nHost: ${HOST}\n\n`, (s) => s.endsWith('}'), 10_000);
    assert.ok(!timedOut, `${name}: answered, not hung`);
    assert.match(text, /^HTTP\/1\.1 400 /, `${name}: ${text}`);
    assert.match(text, /TNM_ERR_BAD_REQUEST_FRAMING/, name);
  }
});

test('malformed and ambiguous heads are refused with 400 TNM_ERR_BAD_REQUEST_FRAMING and the connection closed', { timeout: 90_000 }, async (t) => {
  const cases: Array<[string, string]> = [
    ['two Host headers', `GET / HTTP/1.1\r\nHost: ${HOST}\r\nHost: b.count.localhost\r\n\r\n`],
    ['absolute-form target naming another host', `GET http://b.count.localhost/ HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`],
    ['NUL in a header value', `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\x00b\r\n\r\n`],
    ['bare CR in a header value', `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\rb\r\n\r\n`],
    ['control byte in the target', `GET /a\x01b HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`],
    ['obs-fold', `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\r\n folded\r\n\r\n`],
    ['Content-Length with Transfer-Encoding', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    ['Transfer-Encoding: chunked, chunked', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n`],
    ['Transfer-Encoding: gzip, chunked', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`],
    ['Transfer-Encoding: identity', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: identity\r\n\r\n`],
    ['differing Content-Lengths', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab`],
    ['invalid Content-Length', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: +1\r\n\r\na`],
    ['chunk size overflow', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n${'f'.repeat(20)}\r\n`],
    ['control byte in a chunk extension', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\x01\r\nx\r\n0\r\n\r\n`],
    ['oversized chunk extension', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n1;${'a'.repeat(20_000)}\r\nx\r\n0\r\n\r\n`],
  ];
  for (const { name, fast } of paths) {
    const kernel = await countingKernel(t, fast);
    const before = await backendStats(kernel);
    for (const [what, data] of cases) {
      const { text, closed } = await rawSend(kernel, data, () => false);
      assert.ok(closed, `${name}, ${what}: connection closed`);
      assert.match(text, /^HTTP\/1\.1 400 /, `${name}, ${what}: ${JSON.stringify(text)}`);
      assert.match(text, /TNM_ERR_BAD_REQUEST_FRAMING/, `${name}, ${what}`);
    }
    const after = await backendStats(kernel);
    // Refused heads never reach the app; a refused chunked body may have started (its head was fine) but no
    // second request ever came out of it.
    assert.ok(after.heads - before.heads <= 1 + 2, `${name}: ${after.paths.slice(-6).join(' ')}`);
    assert.ok(!after.paths.slice(-6).some((p) => p !== '/' && p !== '/__stats'), `${name}: ${after.paths.slice(-6).join(' ')}`);
  }
});

test('CONNECT gets a status instead of a closed connection', { timeout: 60_000 }, async (t) => {
  for (const { name, fast } of paths) {
    const kernel = await countingKernel(t, fast);
    const { text } = await rawSend(kernel, `CONNECT ${HOST}:443 HTTP/1.1\r\nHost: ${HOST}:443\r\n\r\n`, () => false);
    assert.match(text, /^HTTP\/1\.1 405 /, `${name}: ${text}`);
  }
});

test('a well-formed absolute-form target naming the Host, and Connection listing a framing header, still work', { timeout: 60_000 }, async (t) => {
  for (const { name, fast } of paths) {
    const kernel = await countingKernel(t, fast);
    const { text } = await rawSend(kernel, `GET http://${HOST}/abs HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, (s) => s.endsWith('}'));
    assert.match(text, /^HTTP\/1\.1 200 /, `${name}: ${text}`);
    const body = 'hello';
    const post = `POST /listed HTTP/1.1\r\nHost: ${HOST}\r\nConnection: keep-alive, Content-Length\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const listed = await rawSend(kernel, post + `GET /after HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, (s) => answers(s) === 2 && s.endsWith('}'));
    assert.match(listed.text, /"path":"\/listed","body":"hello"/, `${name}: ${listed.text}`);
    assert.match(listed.text, /"path":"\/after"/, name);
  }
});
