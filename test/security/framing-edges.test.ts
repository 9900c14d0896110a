// The request-framing attacks of smuggling.test.ts on both edges (test/edges.ts): the built-in proxy, and HAProxy
// programmed by Tenement. Each request goes over a raw socket to the edge, with the lenient counting backend
// (test/fixtures/security/counting-backend.mjs) behind it, which parses bare LF, lets Transfer-Encoding win over
// Content-Length and counts every head it reads. On both edges: one client request is at most one backend
// request, a request hidden in a body or a header (`/smuggled`) never reaches the backend, and the client gets
// one answer. Where the edges answer differently, the expected answer of each is in the table, and docs/edge.md
// ("Framing strictness") says why.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import path from 'node:path';
import { EDGES, edgeKernel, edgeSkip, type EdgeKind } from '../edges.ts';
import { FIXTURES, echoService, request } from '../helpers.ts';
import { prng } from '../prng.ts';
import { Gen, generateRequest } from './framing-corpus.ts';
import { HOST, answers, backendStats, countingEdge, rawSend, type BackendStats } from './smuggling-kernel.ts';

const hidden = `GET /smuggled HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
const chunkedHidden = `0\r\n\r\n${hidden}`;

/**
 * What an edge does with a request: refused with this status (connection closed, nothing reaches the backend,
 * unless `bodyStarted`: a head that was fine went on before its body was found bad), with Tenement's JSON error
 * code or (null) HAProxy's own page; or served once, the backend reading exactly one request.
 */
/**
 * `orReset`: the edge may reset the connection instead: HAProxy answers a head past its buffer at once and
 * closes while the client is still sending, and the client's kernel then drops the answer on the RST.
 */
type Outcome = { refused: number; code: string | null; bodyStarted?: true; orReset?: true } | { served: true; path: string };

const FRAMING = 'TNM_ERR_BAD_REQUEST_FRAMING';
const refused = (code: string | null = FRAMING, status = 400): Outcome => ({ refused: status, code });
const served = (path = '/a'): Outcome => ({ served: true, path });

/** [what, request, built-in edge, HAProxy edge]. HAProxy's parser answers its own HTML page (code null). */
const CASES: Array<[string, string, Outcome, Outcome]> = [
  // CL.TE and TE.CL: HAProxy reads the body as chunked, drops Content-Length and closes after the answer
  // (RFC 9112 §6.3), so the request hidden after the chunks is never read.
  ['CL.TE', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${chunkedHidden.length}\r\nTransfer-Encoding: chunked\r\n\r\n${chunkedHidden}`, refused(), served()],
  ['TE.CL', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n${(hidden.length + 2).toString(16)}\r\nxx${hidden}\r\n0\r\n\r\n`, refused(), served()],
  ['obfuscated Transfer-Encoding (xchunked) with Content-Length', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${chunkedHidden.length}\r\nTransfer-Encoding: xchunked\r\n\r\n${chunkedHidden}`, refused(), refused(null)],
  ['Transfer-Encoding: chunked, chunked', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked, chunked\r\n\r\n${chunkedHidden}`, refused(), refused(null)],
  ['Transfer-Encoding: gzip, chunked', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n${chunkedHidden}`, refused(), refused(null, 422)],
  ['two different Content-Lengths', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 0\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`, refused(), refused(null)],
  // Identical values may be taken as one (RFC 9110 §8.6): HAProxy does, the built-in refuses any repeat.
  ['two equal Content-Lengths', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab`, refused(), served()],
  ['invalid Content-Length', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: +1\r\n\r\na`, refused(), refused(null)],
  // obs-fold: HAProxy unfolds the line into the previous value (RFC 9112 §5.2), so the folded
  // Transfer-Encoding is data and the request is framed by its Content-Length alone.
  ['obs-fold hiding Transfer-Encoding', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\r\n Transfer-Encoding: chunked\r\nContent-Length: ${chunkedHidden.length}\r\n\r\n${chunkedHidden}`, refused(), served()],
  // Bare LF: HAProxy reads it as a line end (RFC 9112 §2.2) and sends a CRLF head on; the lenient backend
  // would read the same lines, so both agree on one request.
  ['bare LF line ends', `GET /a HTTP/1.1\nHost: ${HOST}\nX-A: a\n\n`, refused(), served()],
  ['bare LF in a value hiding Transfer-Encoding', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\nTransfer-Encoding: chunked\r\nContent-Length: ${chunkedHidden.length}\r\n\r\n${chunkedHidden}`, refused(), served()],
  ['bare CR in a value', `GET /a HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\rb\r\n\r\n`, refused(), refused(null)],
  // HAProxy 2.6's parser lets NUL and other control bytes through in values: Tenement's config refuses them.
  ['NUL in a value', `GET /a HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\x00b\r\n\r\n`, refused(), refused()],
  ['control byte in a value', `GET /a HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\x01b\r\n\r\n`, refused(), refused()],
  ['DEL in a value', `GET /a HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\x7fb\r\n\r\n`, refused(), refused()],
  ['control byte in the target', `GET /a\x01b HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, refused(), refused(null)],
  ['invalid header name', `GET /a HTTP/1.1\r\nHost: ${HOST}\r\nX"y: 1\r\n\r\n`, refused(), refused(null)],
  ['whitespace before the colon', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding : chunked\r\nContent-Length: ${chunkedHidden.length}\r\n\r\n${chunkedHidden}`, refused(), refused(null)],
  ['two Host headers', `GET /a HTTP/1.1\r\nHost: ${HOST}\r\nHost: b.count.localhost\r\n\r\n`, refused(), refused(null)],
  ['absolute-form target naming another host', `GET http://b.count.localhost/a HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, refused(), refused(null)],
  ['absolute-form target naming the Host', `GET http://${HOST}/a HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, served(`http://${HOST}/a`), served(`http://${HOST}/a`)],
  ['no Host', `GET /a HTTP/1.1\r\n\r\n`, refused('TNM_ERR_BAD_HOST'), refused('TNM_ERR_BAD_HOST')],
  ['CONNECT', `CONNECT ${HOST}:443 HTTP/1.1\r\nHost: ${HOST}:443\r\n\r\n`, refused('TNM_ERR_METHOD_NOT_ALLOWED', 405), refused('TNM_ERR_METHOD_NOT_ALLOWED', 405)],
  // A minor version above 1.1 is read as 1.1 by HAProxy (RFC 9110 §2.5); the built-in refuses it.
  ['HTTP/1.2', `GET /a HTTP/1.2\r\nHost: ${HOST}\r\n\r\n`, refused(), served()],
  ['chunk size overflow', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n${'f'.repeat(20)}\r\n${hidden}`, { refused: 400, code: FRAMING, bodyStarted: true }, refused(null)],
  // Chunk extensions: HAProxy drops them (the instance never sees one); the built-in refuses bad ones.
  ['control byte in a chunk extension', `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n1;a=\x01\r\nx\r\n0\r\n\r\n`, { refused: 400, code: FRAMING, bodyStarted: true }, served()],
  // Heads over the limits: the built-in's parser (64 KB fast path, then node:http) and HAProxy's buffer (32 KB).
  ['a 1 MB head', `GET /a HTTP/1.1\r\nHost: ${HOST}\r\nX-A: ${'a'.repeat(1 << 20)}\r\n\r\n`, refused('TNM_ERR_HEADERS_TOO_LARGE', 431), { ...refused(null), orReset: true }],
];

/** A JSON error's code, null for HAProxy's HTML page, undefined for anything else. */
function codeOf(text: string): string | null | undefined {
  const body = text.slice(text.indexOf('\r\n\r\n') + 4);
  if (body.startsWith('<html>')) return null;
  try {
    return (JSON.parse(body) as { error: { code: string } }).error.code;
  } catch {
    return undefined;
  }
}

for (const edge of EDGES) {
  test(`framing attacks on the ${edge} edge: refused or framed as one request, never smuggled`, { timeout: 180_000, skip: edgeSkip(edge) }, async (t) => {
    const { url } = await countingEdge(t, edge);
    const column = edge === 'builtin' ? 2 : 3;
    for (const row of CASES) {
      const [what, data] = row;
      const expected = row[column] as Outcome;
      const before = await backendStats(url);
      // A refusal is read until the edge closes (a Host error keeps the connection: read to the end of its body).
      const keptOpen = 'served' in expected || expected.code === 'TNM_ERR_BAD_HOST';
      const { text, closed } = await rawSend(url, data, (s) => keptOpen && answers(s) === 1 && s.endsWith('}'));
      const after = await backendStats(url);
      // Heads the backend read for this request (the second stats request excluded), and their paths.
      const heads = after.heads - before.heads - 1;
      const reached = heads > 0 ? after.paths.slice(-1 - heads, -1) : [];
      const label = `${edge} edge, ${what}: ${JSON.stringify(text.slice(0, 400))}, backend read ${JSON.stringify(reached)}`;
      assert.equal(after.smuggled, 0, `nothing smuggled: ${label}`);
      if ('refused' in expected && expected.orReset && text === '') {
        assert.ok(closed, `reset, not left open: ${label}`);
        assert.equal(heads, 0, `the backend read nothing: ${label}`);
        continue;
      }
      assert.equal(answers(text), 1, `one answer: ${label}`);
      if ('served' in expected) {
        assert.match(text, /^HTTP\/1\.1 200 /, label);
        assert.equal(heads, 1, `the backend read one request: ${label}`);
        assert.deepEqual(reached, [expected.path], label);
      } else {
        assert.match(text, new RegExp(`^HTTP/1\\.1 ${expected.refused} `), label);
        assert.ok(closed || /\r\nconnection: close\r\n/i.test(text) || expected.code === 'TNM_ERR_BAD_HOST', `connection closed: ${label}`);
        assert.equal(codeOf(text), expected.code, label);
        assert.ok(heads <= (expected.bodyStarted ? 1 : 0), `the backend read ${heads} requests: ${label}`);
      }
    }
  });

  test(`Connection: content-length cannot capture the next visitor on the ${edge} edge`, { timeout: 120_000, skip: edgeSkip(edge) }, async (t) => {
    const { url } = await countingEdge(t, edge);
    const smuggled = `POST /capture HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 60\r\n\r\n`;
    const attack = `POST /store HTTP/1.1\r\nHost: ${HOST}\r\nConnection: content-length\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`;
    const stored = await rawSend(url, attack, (s) => s.endsWith('}'));
    const victim = await rawSend(url, `GET /secret HTTP/1.1\r\nHost: ${HOST}\r\nCookie: session=victim\r\n\r\n`, (s) => s.endsWith('}'));
    assert.match(stored.text, /"path":"\/store"/, stored.text);
    assert.match(victim.text, /"path":"\/secret"/, victim.text);
    const stats = await backendStats(url);
    assert.ok(!stats.paths.includes('/capture'), `the backend never parsed the smuggled request: ${stats.paths.join(' ')}`);
    assert.ok(!stats.bodies.some((b) => b.includes('session=victim')), "no body holds the victim's request");
  });

  test(`a tenant's response with Connection: content-length is a 502 on the ${edge} edge, never a forged response`, { timeout: 120_000, skip: edgeSkip(edge) }, async (t) => {
    const { url } = await countingEdge(t, edge);
    const { text } = await rawSend(url, `GET /__forge HTTP/1.1\r\nHost: ${HOST}\r\n\r\nGET /next HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, () => false);
    assert.match(text, /^HTTP\/1\.1 502 /, text);
    assert.equal(codeOf(text), 'TNM_ERR_UPSTREAM_ERROR');
    assert.ok(!text.includes('forged'), `the forged response never reaches the client: ${text}`);
  });

  test(`pipelined requests on the ${edge} edge: each answered once, in order`, { timeout: 120_000, skip: edgeSkip(edge) }, async (t) => {
    const { url } = await countingEdge(t, edge);
    const body = 'hello';
    const pipelined = [
      `POST /one HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      `POST /two HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
      `GET /three HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`,
    ].join('');
    const { text } = await rawSend(url, pipelined, (s) => answers(s) === 3 && s.endsWith('}'));
    assert.equal(answers(text), 3, text);
    const paths = [...text.matchAll(/"path":"([^"]*)","body":"([^"]*)"/g)].map((m) => `${m[1]}=${m[2]}`);
    assert.deepEqual(paths, ['/one=hello', '/two=hello', '/three=']);
  });
}

/** Requests of the differential corpus (framing-differential.test.ts) sent through each edge. */
const SAMPLE = Number(process.env.TENEMENT_CORPUS_SAMPLE ?? 200);

for (const edge of EDGES) {
  test(`a sample of the differential corpus on the ${edge} edge: every request the backend reads is answered to its client`, { timeout: 300_000, skip: edgeSkip(edge) }, async (t) => {
    // The corpus's hosts: {a,b}.notes.localhost, notes.localhost (either), [::1] (management).
    const e = await edgeKernel(t, edge, { notes: { command: `node ${path.join(FIXTURES, 'security', 'counting-backend.mjs')}`, idleTimeout: false } });
    await e.kernel.spawnInstance('notes', 'a');
    await e.kernel.spawnInstance('notes', 'b');
    await e.settled();
    const stats = async (id: string): Promise<BackendStats> => JSON.parse((await request(e.url, `${id}.notes.localhost`, '/__stats')).body) as BackendStats;
    const before = [await stats('a'), await stats('b')];
    const canary = 'GET /__next HTTP/1.1\r\nHost: next.localhost\r\n\r\n';
    // The same seed as the differential test: its first requests.
    const g = new Gen(prng(0x7e4e3e47));
    let answered = 0;
    for (let i = 0; i < SAMPLE; i++) {
      const data = Buffer.concat([generateRequest(g), Buffer.from(canary, 'latin1')]);
      // Bounded generously: an answer that came after the client gave up would look like a request nobody answered.
      const { text } = await rawSend(e.url, data, (s) => s.includes('TNM_ERR_UNKNOWN_SERVICE'), 3_000);
      answered += (text.match(/\{"seq":\d+,/g) ?? []).length;
    }
    const after = [await stats('a'), await stats('b')];
    // Heads each backend read for the sample (its second stats request left out).
    const heads = after.reduce((n, s, i) => n + s.heads - before[i]!.heads - 1, 0);
    console.log(`corpus sample on the ${edge} edge: ${SAMPLE} requests, ${answered} answered by a backend, ${heads} read by one`);
    assert.equal(heads, answered, 'a request the backend read and its client got no answer for: the edge and the backend disagree on framing');
    for (const s of after) assert.equal(s.canaryInBody, 0);
    assert.ok(answered > SAMPLE / 10, `the sample reaches the backends (${answered})`);
  });
}

/** Which request headers the instance got, through the edge. */
async function seenHeaders(url: string, headers: Record<string, string>): Promise<Record<string, string>> {
  const reply = await request(url, 'a.echo.localhost', '/echo', { headers });
  assert.equal(reply.status, 200, reply.body);
  return (JSON.parse(reply.body) as { headers: Record<string, string> }).headers;
}

test('header names outside letters, digits and - (X_Forwarded_For): forwarded by the built-in edge, dropped by HAProxy', { timeout: 120_000 }, async (t) => {
  const expectations: Array<[EdgeKind, boolean]> = [['builtin', true], ['haproxy', false]];
  for (const [edge, kept] of expectations) {
    if (edgeSkip(edge)) continue;
    const { kernel, url, settled } = await edgeKernel(t, edge, { echo: echoService() });
    await kernel.spawnInstance('echo', 'a');
    await settled();
    const seen = await seenHeaders(url, { 'x_forwarded_for': '6.6.6.6', 'x-plain': 'p' });
    assert.equal(seen['x-plain'], 'p', edge);
    // CGI/WSGI-style apps read X_Forwarded_For as X-Forwarded-For: HAProxy drops it (as nginx does), the
    // request itself is answered as on the built-in edge (docs/edge.md).
    assert.equal(seen['x_forwarded_for'], kept ? '6.6.6.6' : undefined, edge);
    assert.equal(seen['x-forwarded-for'], '127.0.0.1', `${edge}: the client address, not the forged one`);
  }
  if (edgeSkip('haproxy')) t.skip(String(edgeSkip('haproxy')));
});
