// Bounded mutation fuzzer: seeded smuggling shapes (CL.TE, TE.CL, obfuscated Transfer-Encoding, Connection
// listing framing headers, bare LF/CR, obs-fold, chunk extensions and sizes), mutated byte by byte, sent over raw
// sockets through a real kernel to the lenient counting backend, each followed by a pipelined canary request.
// Invariants: no request the client never put on a request line (`/smuggled-*`) reaches the backend, and no
// canary ever lands inside another request's body. Runs for a fixed time per path, prints the cases run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HOST, backendStats, countingEdge, countingKernel, rawSend } from './smuggling-kernel.ts';
import { edgeSkip } from '../edges.ts';
import { prng } from '../prng.ts';

const BUDGET_MS = Number(process.env.TENEMENT_FUZZ_MS ?? 15_000);


const TE = ['chunked', ' chunked', 'chunked ', 'Chunked', 'chunked, chunked', 'identity', 'gzip, chunked', 'chunked, identity', '\tchunked', 'chunked\x0b', 'xchunked', 'chunk', '"chunked"'];

function shape(random: () => number, i: number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
  const hidden = `GET /smuggled-${i} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
  const chunkedHidden = `0\r\n\r\n${hidden}`;
  const te = pick(TE);
  const sep = pick(['\r\n', '\r\n', '\n', '\r']);
  switch (Math.floor(random() * 10)) {
    case 0: // CL.TE
      return `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${chunkedHidden.length}\r\nTransfer-Encoding: ${te}\r\n\r\n${chunkedHidden}`;
    case 1: // TE.CL
      return `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: ${te}\r\nContent-Length: 3\r\n\r\n${(hidden.length + 2).toString(16)}\r\nxx${hidden}\r\n0\r\n\r\n`;
    case 2: // Connection strips a framing header (node's client sends a DELETE's or GET's body unframed)
      return `${pick(['POST', 'DELETE', 'GET', 'OPTIONS'])} /a HTTP/1.1\r\nHost: ${HOST}\r\nConnection: ${pick(['content-length', 'Content-Length, close', 'transfer-encoding', 'keep-alive, content-length'])}\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`;
    case 3: // header injection through a line separator
      return `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a${sep}Transfer-Encoding: chunked\r\nContent-Length: ${chunkedHidden.length}\r\n\r\n${chunkedHidden}`;
    case 4: // obs-fold hiding Transfer-Encoding
      return `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nX-A: a\r\n${pick([' ', '\t'])}Transfer-Encoding: chunked\r\nContent-Length: ${chunkedHidden.length}\r\n\r\n${chunkedHidden}`;
    case 5: // two Content-Lengths
      return `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 0\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`;
    case 6: // chunk extension or size hiding a request
      return `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\n${pick(['0;a\n', '0\n', '0 \r\n', `${'0'.repeat(20)}1\r\n`, '0;\x00\r\n'])}\r\n${hidden}`;
    case 7: // request line tricks
      return `${pick(['GET', 'POST', 'GET\t', 'G\x00ET'])} ${pick(['/a', `/a${sep}${hidden}`, `http://b.count.localhost/`, '/a b'])} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`;
    case 8: // two Hosts
      return `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nHost: b.count.localhost\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`;
    default: // plain, with a body that looks like a request
      return `POST /a HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${hidden.length}\r\n\r\n${hidden}`;
  }
}

function mutate(random: () => number, text: string): string {
  let out = text;
  for (let n = Math.floor(random() * 3); n > 0; n--) {
    const at = Math.floor(random() * out.indexOf('\r\n\r\n') + 1);
    const byte = String.fromCharCode([0, 9, 10, 13, 32, 11, 127, 0xa0][Math.floor(random() * 8)]!);
    out = random() < 0.5 ? out.slice(0, at) + byte + out.slice(at) : out.slice(0, at) + byte + out.slice(at + 1);
  }
  return out;
}

for (const { name, fast, seed, edge } of [
  { name: 'fast path', fast: true, seed: 0xf00d, edge: 'builtin' },
  { name: 'node:http path', fast: false, seed: 0xbeef, edge: 'builtin' },
  // The same shapes through HAProxy (test/edges.ts): it parses, repairs or refuses; the backend must still
  // never read a request the client did not put on a request line.
  { name: 'haproxy edge', fast: true, seed: 0xed9e, edge: 'haproxy' },
] as const) {
  test(`fuzz (${name}): one client request never becomes two backend requests`, { timeout: BUDGET_MS + 120_000, skip: edgeSkip(edge) }, async (t) => {
    const kernel = edge === 'haproxy' ? (await countingEdge(t, edge)).url : await countingKernel(t, fast);
    const random = prng(seed);
    const deadline = Date.now() + BUDGET_MS;
    let cases = 0;
    let refused = 0;
    // Hidden requests that the edge read as the client's next pipelined request and answered to that client.
    let pipelined = 0;
    while (Date.now() < deadline) {
      const data = (random() < 0.7 ? mutate(random, shape(random, cases)) : shape(random, cases)) + `GET /__canary-${cases} HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
      // Either refused (400 and closed), answered twice, or left waiting for a body the client never sent.
      const { text } = await rawSend(kernel, data, (s) => s.includes(`/__canary-${cases}"`), 1_000);
      if (/^HTTP\/1\.1 400 /.test(text)) refused++;
      if (text.includes(`"path":"/smuggled-${cases}"`)) pipelined++;
      cases++;
    }
    const stats = await backendStats(kernel);
    console.log(`fuzz ${name}: ${cases} cases in ${BUDGET_MS} ms, ${refused} refused with 400, ${pipelined} hidden requests read as pipelined ones and answered, backend parsed ${stats.heads} heads`);
    const smuggledPaths = stats.paths.filter((p) => p.startsWith('/smuggled')).join(' ');
    if (edge === 'builtin') {
      assert.equal(stats.smuggled, 0, `${name}: smuggled requests reached the backend: ${smuggledPaths}`);
    } else {
      // HAProxy may read a hidden request as the next pipelined one (a bare LF or a space ending the last chunk's
      // line: RFC 9112 §2.2, §7.1.1), forward it as a request of its own and answer it to the same client: no
      // parser then reads it as data, so that is not smuggling. One the backend read that the client never got
      // an answer for would be: HAProxy and the backend disagreeing on where a request ends.
      assert.equal(stats.smuggled, pipelined, `${name}: requests reached the backend that the client got no answer for: ${smuggledPaths}`);
    }
    assert.equal(stats.canaryInBody, 0, `${name}: a pipelined canary landed inside a body`);
    assert.ok(cases > 20, `${name}: ran ${cases} cases`);
  });
}
