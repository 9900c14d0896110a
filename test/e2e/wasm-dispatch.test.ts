// Requests to wasm instances through the kernel's proxy take the direct path (RunningHandle.inProcess): the
// proxy calls the function in-process instead of connecting to its loopback server. The proof is the runtime's
// own count of requests that reached that server (tenement_wasm_loopback_requests_total), which must stay
// at zero, on the fast data plane and on the node:http path alike, while framing, limits, timeouts, metrics
// and in-flight counting behave as for a proxied request.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import metrics from '../../plugins/metrics/index.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import { request, servePlugins } from '../helpers.ts';
import { rawExchange, type RawAnswer } from '../raw-http.ts';
import { buildCGuests, wasmFunction } from '../wasm-guests.ts';
import type { EngineName } from '../../core/wasm/engine.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasm-dispatch-'));
const { handler: HANDLER, guest: GUEST, skip } = buildCGuests(work);
after(() => rmSync(work, { recursive: true, force: true }));

const SERVICES: Record<string, ServiceInput> = {
  hello: wasmFunction(HANDLER, { wasm: { maxBody: 1000 } }),
  // The function's own deadline (a 504 from the runtime) ...
  spin: wasmFunction(GUEST, { wasm: { timeout: '300ms' } }),
  // ... and the proxy's requestTimeout, shorter than the function's (a coded 504 from the kernel).
  slow: wasmFunction(GUEST, { requestTimeout: '300ms', wasm: { timeout: '1500ms' } }),
};

async function bootKernel(engine: EngineName = 'v8'): Promise<TestKernel> {
  return createTestKernel({ plugins: [...servePlugins, wasmRuntime, metrics], config: { pluginOptions: { 'runtime-wasm': { engine } }, services: SERVICES } });
}

async function metricsText(kernel: TestKernel): Promise<string> {
  return (await request(kernel, 'localhost', '/metrics')).body;
}

/** Requests that reached the service's loopback server, all instances together. */
async function loopbackRequests(kernel: TestKernel, service: string): Promise<number> {
  const pattern = new RegExp(`^tenement_wasm_loopback_requests_total\\{service="${service}",[^}]*\\} (\\d+)$`, 'gm');
  let total = 0;
  for (const match of (await metricsText(kernel)).matchAll(pattern)) total += Number(match[1]);
  return total;
}

/** One raw connection (see rawExchange), with a pause between writes; a reset counts as the server closing. */
function raw(kernel: TestKernel, writes: (string | Buffer)[], until: (text: string) => boolean, gapMs = 20): Promise<RawAnswer> {
  return rawExchange(kernel, writes, until, { gapMs, timeoutMs: 15_000, resetIsClose: true });
}

const count = (text: string, needle: string): number => text.split(needle).length - 1;

/** The tests both proxy paths must pass: the fast data plane and node:http (which also serves HTTP/1.0 and Expect). */
function sharedTests(kernel: () => TestKernel): void {
  test('GET and POST with a Content-Length body are answered by the function, not through its server', async () => {
    const get = await request(kernel(), 'alice.hello.localhost', '/?x=1');
    assert.equal(get.status, 200, get.body);
    assert.equal(get.body, 'Hello from C, alice! (GET /?x=1)\n');
    assert.equal(get.headers['content-type'], 'text/plain');
    assert.equal(get.headers['content-length'], String(Buffer.byteLength(get.body)));
    const payload = '{"ping":true}';
    const post = await request(kernel(), 'alice.hello.localhost', '/echo', { method: 'POST', body: payload, headers: { 'content-type': 'application/json' } });
    assert.equal(post.status, 200, post.body);
    assert.equal(post.body, payload);
    assert.equal(post.headers['content-type'], 'application/json');
    assert.equal(await loopbackRequests(kernel(), 'hello'), 0);
  });

  test('a chunked body arrives whole and decoded', async () => {
    const head = 'POST /echo HTTP/1.1\r\nHost: alice.hello.localhost\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n';
    const { text } = await raw(kernel(), [head, '5\r\nhello\r\n', '6;ext=1\r\n world\r\n', '0\r\nX-Trailer: t\r\n\r\n'], (s) => s.endsWith('hello world'));
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\nContent-Length: 11\r\n/);
    assert.equal(await loopbackRequests(kernel(), 'hello'), 0);
  });

  test('HEAD gets the headers and Content-Length of a GET, and no body', async () => {
    const head = await request(kernel(), 'bob.hello.localhost', '/', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal(head.headers['content-length'], String(Buffer.byteLength('Hello from C, bob! (HEAD /?)\n')));
    assert.equal(await loopbackRequests(kernel(), 'hello'), 0);
  });

  test('a body over wasm.maxBody is refused 413 without reaching the guest, and the connection closes', async () => {
    const big = 'x'.repeat(1500);
    const declared = await raw(kernel(), [`POST /echo HTTP/1.1\r\nHost: alice.hello.localhost\r\nContent-Length: ${big.length}\r\n\r\n${big}`], () => false);
    assert.match(declared.text, /^HTTP\/1\.1 413 /);
    assert.match(declared.text, /\r\nconnection: close\r\n/i);
    assert.match(declared.text, /request body too large\n$/);
    assert.ok(declared.closed, 'the connection must close');
    const chunked = await raw(
      kernel(),
      ['POST /echo HTTP/1.1\r\nHost: alice.hello.localhost\r\nTransfer-Encoding: chunked\r\n\r\n', `${(800).toString(16)}\r\n${'a'.repeat(800)}\r\n`, `${(800).toString(16)}\r\n${'b'.repeat(800)}\r\n`],
      () => false,
    );
    assert.match(chunked.text, /^HTTP\/1\.1 413 /);
    assert.ok(chunked.closed, 'the connection must close');
    assert.equal(await loopbackRequests(kernel(), 'hello'), 0);
  });

  test("the function's deadline is a 504 from the runtime; the proxy's requestTimeout a coded 504", async () => {
    const cut = await request(kernel(), 'alice.spin.localhost', '/loop');
    assert.equal(cut.status, 504, cut.body);
    assert.equal(cut.body, 'function timed out\n');
    const slow = await request(kernel(), 'alice.slow.localhost', '/loop');
    assert.equal(slow.status, 504, slow.body);
    assert.equal((JSON.parse(slow.body) as { error: { code: string } }).error.code, 'TNM_ERR_UPSTREAM_TIMEOUT');
    const instance = kernel().instances.get('slow', 'alice')!;
    assert.equal(instance.inFlight, 0, 'a timed-out request is no longer in flight');
    assert.equal(await loopbackRequests(kernel(), 'spin'), 0);
    assert.equal(await loopbackRequests(kernel(), 'slow'), 0);
  });

  test('a hibernated instance is woken and then served directly', async () => {
    assert.equal((await request(kernel(), 'frank.hello.localhost', '/visits')).status, 200);
    const instance = kernel().instances.get('hello', 'frank')!;
    await kernel().hibernate(instance);
    const woken = await request(kernel(), 'frank.hello.localhost', '/visits');
    assert.equal(woken.status, 200, woken.body);
    assert.equal((JSON.parse(woken.body) as { visits: number }).visits, 2);
    assert.equal(await loopbackRequests(kernel(), 'hello'), 0);
  });

  test('requests are counted by the request hook and none stays in flight', async () => {
    const instance = kernel().instances.get('hello', 'alice')!;
    const before = instance.lastActivity;
    assert.equal((await request(kernel(), 'alice.hello.localhost', '/')).status, 200);
    assert.equal(instance.inFlight, 0);
    assert.ok(instance.lastActivity >= before);
    const text = await metricsText(kernel());
    assert.match(text, /tenement_requests_total\{service="hello",instance="hello:alice",code_class="2xx"\} [1-9]/);
    assert.match(text, /tenement_requests_total\{service="hello",instance="hello:alice",code_class="4xx"\} [1-9]/, 'the 413s are counted');
    assert.match(text, /tenement_wasm_invocations_total\{service="hello",instance="hello:alice",outcome="ok"\} [1-9]/);
  });

  test('an HTTP/1.0 request (node:http on either path) is served directly too', async () => {
    const { text, closed } = await raw(kernel(), ['GET /?v=10 HTTP/1.0\r\nHost: carol.hello.localhost\r\n\r\n'], () => false);
    assert.match(text, /^HTTP\/1\.[01] 200 OK\r\n/);
    assert.ok(text.endsWith('Hello from C, carol! (GET /?v=10)\n'), text);
    assert.ok(closed);
    assert.equal(await loopbackRequests(kernel(), 'hello'), 0);
  });

  test('Expect: 100-continue gets its interim response, then the body reaches the function', async () => {
    const head = 'POST /echo HTTP/1.1\r\nHost: carol.hello.localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n';
    const { text } = await raw(kernel(), [head, 'hello'], (s) => s.endsWith('\r\n\r\nhello'), 200);
    assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    assert.equal(await loopbackRequests(kernel(), 'hello'), 0);
  });

  test("the instance's loopback server still answers (tools, fallback), and is counted", async () => {
    const instance = kernel().instances.get('hello', 'alice')!;
    const { port } = instance.handle!.address;
    const direct = await request(`http://127.0.0.1:${port}`, 'alice.hello.localhost', '/');
    assert.equal(direct.status, 200, direct.body);
    assert.equal(await loopbackRequests(kernel(), 'hello'), 1);
  });
}

describe('wasm direct dispatch on the fast data plane', { skip }, () => {
  let kernel: TestKernel;
  before(async () => {
    kernel = await bootKernel();
  });
  after(() => kernel?.close());

  test('keep-alive: several requests, sequential and pipelined, on one connection', async () => {
    const get = (p: string) => `GET ${p} HTTP/1.1\r\nHost: dave.hello.localhost\r\n\r\n`;
    const head = 'HEAD / HTTP/1.1\r\nHost: dave.hello.localhost\r\n\r\n';
    const post = 'POST /echo HTTP/1.1\r\nHost: dave.hello.localhost\r\nContent-Length: 4\r\n\r\nping';
    // Sequential writes, then a pipelined batch: a HEAD that sent a body would shift every later response.
    const { text, closed } = await raw(kernel, [get('/?n=1'), head, post, get('/?n=2') + post + get('/?n=3')], (s) => count(s, 'HTTP/1.1 200') === 6 && s.endsWith('(GET /?n=3)\n'), 50);
    assert.equal(closed, false, 'the connection stays open');
    const bodies = text.split(/HTTP\/1\.1 200 OK\r\n[^]*?\r\n\r\n/).slice(1);
    assert.deepEqual(bodies, ['Hello from C, dave! (GET /?n=1)\n', '', 'ping', 'Hello from C, dave! (GET /?n=2)\n', 'ping', 'Hello from C, dave! (GET /?n=3)\n']);
    assert.equal(await loopbackRequests(kernel, 'hello'), 0);
  });

  sharedTests(() => kernel);
});

describe('wasm direct dispatch on the node:http proxy (TENEMENT_FAST_PROXY=0)', { skip }, () => {
  let kernel: TestKernel;
  before(async () => {
    const previous = process.env.TENEMENT_FAST_PROXY;
    process.env.TENEMENT_FAST_PROXY = '0';
    try {
      kernel = await bootKernel();
    } finally {
      if (previous === undefined) delete process.env.TENEMENT_FAST_PROXY;
      else process.env.TENEMENT_FAST_PROXY = previous;
    }
  });
  after(() => kernel?.close());

  test('keep-alive: several requests on one connection', async () => {
    const get = (p: string) => `GET ${p} HTTP/1.1\r\nHost: dave.hello.localhost\r\n\r\n`;
    const post = 'POST /echo HTTP/1.1\r\nHost: dave.hello.localhost\r\nContent-Length: 4\r\n\r\nping';
    const { text, closed } = await raw(kernel, [get('/?n=1'), post, get('/?n=2')], (s) => count(s, 'HTTP/1.1 200') === 3 && s.endsWith('(GET /?n=2)\n'), 50);
    assert.equal(closed, false, 'the connection stays open');
    assert.match(text, /\r\n\r\nping/);
    assert.equal(await loopbackRequests(kernel, 'hello'), 0);
  });

  sharedTests(() => kernel);
});

// The same direct path with the functions on the wasmtime engine (the fast data plane; the node:http path above
// does not depend on the engine).
const wasmtimeSkip = wasmtimeStatus().usable ? false : 'needs the wasmtime library: npm run fetch:wasmtime';
describe('wasm direct dispatch on the fast data plane, functions on wasmtime', { skip: skip || wasmtimeSkip }, () => {
  let kernel: TestKernel;
  before(async () => {
    kernel = await bootKernel('wasmtime');
  });
  after(() => kernel?.close());

  sharedTests(() => kernel);
});
