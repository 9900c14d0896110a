// The wasm tier's pure parts: the memory-cap rewrite, binary detection, CGI in and out, and the config rules.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resolveConfig } from '../../core/config/loader.ts';
import { TenementError } from '../../core/errors.ts';
import { capMemory } from '../../core/wasm/cap-memory.ts';
import { Deadline } from '../../core/wasm/deadline.ts';
import { binaryKind, memoryPagesFor } from '../../core/wasm/engine.ts';
import { cgiEnv, parseCgiResponse } from '../../runtimes/wasm/cgi.ts';

const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
/** A module with one memory section: flags, min (and max). */
const withMemory = (...limits: number[]) => new Uint8Array([...HEADER, 5, limits.length + 1, 1, ...limits]);

test('capMemory writes a maximum into defined memories, and keeps a smaller one', () => {
  const capped = capMemory(withMemory(0, 2), 256);
  assert.ok(WebAssembly.validate(capped));
  assert.deepEqual([...capped.subarray(8)], [5, 5, 1, 1, 2, 0x80, 0x02]);
  assert.deepEqual([...capMemory(withMemory(1, 2, 10), 256).subarray(8)], [5, 4, 1, 1, 2, 10]);
});

test('capMemory makes memory.grow fail at the cap', () => {
  // (module (memory (export "m") 1)) -> capped at 3 pages
  const bytes = new Uint8Array([...HEADER, 5, 3, 1, 0, 1, 7, 5, 1, 1, 0x6d, 2, 0]);
  const { m } = new WebAssembly.Instance(new WebAssembly.Module(capMemory(bytes, 3))).exports as { m: WebAssembly.Memory };
  assert.equal(m.grow(2), 1);
  assert.throws(() => m.grow(1), /grow/);
});

test('capMemory refuses what it cannot cap', () => {
  assert.throws(() => capMemory(withMemory(0, 10), 5), /needs 10 pages .* over its cap of 5/);
  assert.throws(() => capMemory(withMemory(4, 1), 256), /memory64/);
  assert.throws(() => capMemory(withMemory(3, 1, 2), 256), /shared/);
  // (import "env" "memory" (memory 1))
  const imported = new Uint8Array([...HEADER, 2, 15, 1, 3, 0x65, 0x6e, 0x76, 6, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 2, 0, 1]);
  assert.throws(() => capMemory(imported, 256), /imports its memory/);
});

test('binaryKind tells core modules from components', () => {
  assert.equal(binaryKind(new Uint8Array(HEADER)), 'module');
  assert.equal(binaryKind(new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00])), 'component');
  assert.throws(() => binaryKind(new Uint8Array([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0, 0])), /not a WebAssembly binary/);
  assert.equal(memoryPagesFor(undefined), 2048);
  assert.equal(memoryPagesFor(16 * 1024 * 1024), 256);
});

test('CGI environment: request variables, headers as HTTP_*, no Proxy', () => {
  const env = cgiEnv(
    {
      method: 'POST',
      path: '/a/b',
      query: 'x=1',
      headers: [['Content-Type', 'text/plain'], ['X-Thing', 'one'], ['x-thing', 'two'], ['Proxy', 'http://evil'], ['Content-Length', '3']],
      body: new Uint8Array(3),
    },
    { serverName: 'alice.fn.localhost', serverPort: 30001, remoteAddr: '127.0.0.1' },
    { GREETING: 'hi' },
  );
  assert.equal(env.REQUEST_METHOD, 'POST');
  assert.equal(env.PATH_INFO, '/a/b');
  assert.equal(env.QUERY_STRING, 'x=1');
  assert.equal(env.REQUEST_URI, '/a/b?x=1');
  assert.equal(env.CONTENT_TYPE, 'text/plain');
  assert.equal(env.CONTENT_LENGTH, '3');
  assert.equal(env.HTTP_X_THING, 'one, two');
  assert.equal(env.HTTP_PROXY, undefined);
  assert.equal(env.HTTP_CONTENT_TYPE, undefined);
  assert.equal(env.SERVER_NAME, 'alice.fn.localhost');
  assert.equal(env.GREETING, 'hi');
});

test("cgiEnv: the service's env cannot override a CGI variable, and odd names stay plain variables", () => {
  const base = JSON.parse('{"PATH_INFO":"/spoofed","__proto__":"x","HTTP_X_A":"from-env"}') as Record<string, string>;
  const env = cgiEnv({ method: 'GET', path: '/real', query: '', headers: [['X-A', 'from-client']], body: new Uint8Array() }, { serverName: 'h', serverPort: 1, remoteAddr: '' }, base);
  assert.equal(env.PATH_INFO, '/real');
  assert.equal(Object.getPrototypeOf(env), Object.prototype);
  assert.ok(Object.keys(env).includes('__proto__'));
  assert.equal(env.HTTP_X_A, 'from-env, from-client');
});

test('CGI response: Status, Location, headers and body; malformed output is refused', () => {
  const text = (s: string) => new TextEncoder().encode(s);
  const ok = parseCgiResponse(text('Content-Type: text/plain\r\nX-A: 1\r\n\r\nhello\r\n\r\nworld'));
  assert.equal(ok.status, 200);
  assert.deepEqual(ok.headers, [['Content-Type', 'text/plain'], ['X-A', '1']]);
  assert.equal(new TextDecoder().decode(ok.body), 'hello\r\n\r\nworld');
  assert.equal(parseCgiResponse(text('Status: 404 Not Found\n\nnope')).status, 404);
  assert.equal(parseCgiResponse(text('Location: /elsewhere\n\n')).status, 302);
  assert.throws(() => parseCgiResponse(text('')), /wrote nothing/);
  assert.throws(() => parseCgiResponse(text('just a body')), /no header block/);
  assert.throws(() => parseCgiResponse(text('Bad Header Line\n\n')), /malformed header/);
  assert.throws(() => parseCgiResponse(text('Status: abc\n\n')), /invalid Status/);
});

test('config: wasm services need a module and no command; other tiers need a command and no module', () => {
  const source = { path: null, dir: '/srv/app' };
  const config = resolveConfig({ services: { fn: { isolation: 'wasm', module: './fn.wasm' } } }, source);
  assert.equal(config.services.fn!.module, './fn.wasm');
  assert.equal(config.services.fn!.command, './fn.wasm');
  const problem = (raw: unknown): string => {
    try {
      resolveConfig(raw, source);
    } catch (error) {
      assert.ok(error instanceof TenementError);
      return error.message;
    }
    return assert.fail('expected the config to be rejected');
  };
  assert.match(problem({ services: { fn: { isolation: 'wasm' } } }), /services\.fn\.module.*\.wasm file/);
  assert.match(problem({ services: { app: { isolation: 'process' } } }), /services\.app\.command.*expected the command/);
  assert.match(problem({ services: { app: { command: 'node a.js', module: './x.wasm' } } }), /module is only used with isolation: 'wasm'/);
  assert.match(problem({ services: { fn: { isolation: 'wasm', module: 'f.wasm', wasm: { timeout: 'soon' } } } }), /services\.fn\.wasm\.timeout/);
});

test('Deadline: aborts once at its time, tells its one listener, and never after clear()', async () => {
  const late = new Deadline(5);
  let told = 0;
  late.once('abort', () => told++);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(late.aborted, true);
  assert.equal(told, 1);

  const cleared = new Deadline(5);
  cleared.once('abort', () => told++);
  cleared.clear();
  const removed = new Deadline(5);
  const listener = (): void => {
    told++;
  };
  removed.once('abort', listener);
  removed.removeListener('abort', listener);
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(cleared.aborted, false, 'a cleared deadline never aborts');
  assert.equal(removed.aborted, true, 'without a listener it still aborts');
  assert.equal(told, 1, 'no listener was told after clear() or removeListener()');
});
