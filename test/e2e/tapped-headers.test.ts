// What an upstreamHeaders tap puts into the head the instance gets (core/dataplane/tapped-headers.ts): a pair that
// cannot be one header line (CR/LF in the value, a name that is not a token) is dropped and counted as the
// plugin's fault, on the add-only path and on the rebuilt one, so a plugin bug cannot add a header line or a request
// of its own to what the instance reads. A tap may not declare it adds a framing header. The instance
// (test/fixtures/raw-head-app.mjs) answers with the head bytes it got.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import { definePlugin } from '../../sdk/index.ts';
import { FIXTURES, servePlugins } from '../helpers.ts';
import { rawExchange } from '../raw-http.ts';
import { dropUnwritablePairs } from '../../core/dataplane/tapped-headers.ts';

const HOST = 'alice.raw.localhost';

/** The head the instance received, split into lines (the blank line dropped). */
async function upstreamHead(url: string, lines: readonly string[]): Promise<string[]> {
  const answer = await rawExchange(url, [`GET /raw HTTP/1.1\r\nHost: ${HOST}\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`], (text) => {
    const at = text.indexOf('\r\n\r\n');
    const length = /\r\ncontent-length: (\d+)\r\n/i.exec(text.slice(0, at + 2));
    return at !== -1 && length !== null && text.length >= at + 4 + Number(length[1]);
  });
  assert.match(answer.text, /^HTTP\/1\.1 200 /, `answered: ${JSON.stringify(answer.text.slice(0, 200))}`);
  const body = answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4);
  assert.ok(body.endsWith('\r\n\r\n'), `the instance got one whole head: ${JSON.stringify(answer.text)}`);
  return body.slice(0, -4).split('\r\n');
}

const careless = definePlugin({
  name: 'careless-headers',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    // Add-only: the head goes as received plus these, unless the client sent x-added.
    ctx.hooks.upstreamHeaders.tap(({ headers }) => {
      headers.push('x-added', 'fine', 'x-added-evil', 'v\r\nX-Smuggled: 1');
    }, { adds: ['x-added', 'x-added-evil'] });
  },
});

const editor = definePlugin({
  name: 'careless-editor',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    ctx.hooks.upstreamHeaders.tap(({ headers }) => {
      headers.push('X-Ok', '1', 'X-Evil', 'a\r\n\r\nGET /other HTTP/1.1', 'Bad Name', 'v', 'X-Nul', 'a\u0000b', '__proto__', 'kept');
    });
  },
});

test('a tap\'s header pairs that cannot be one line are dropped and counted against the plugin', { timeout: 60_000 }, async (t) => {
  const kernel = await createTestKernel({
    plugins: [...servePlugins, careless, editor],
    config: { services: { raw: { command: process.execPath, args: [path.join(FIXTURES, 'raw-head-app.mjs')], health: '/health', idleTimeout: false } } },
  });
  t.after(() => kernel.close());
  await kernel.spawnInstance('raw', 'alice');

  const head = await upstreamHead(kernel.url, ['Accept: */*']);
  assert.equal(head[0], 'GET /raw HTTP/1.1');
  assert.ok(head.includes('X-Ok: 1') && head.includes('x-added: fine') && head.includes('__proto__: kept'), `the good pairs go: ${head.join(' | ')}`);
  for (const line of head) {
    assert.doesNotMatch(line, /^(x-added-evil|X-Evil|X-Smuggled|Bad Name|X-Nul|GET \/other)/i, `nothing of a bad pair reaches the instance: ${head.join(' | ')}`);
  }
  // Both taps failed as contained faults (the request was served); each is logged naming its plugin.
  const faults = kernel.faults.counts().get('hook:upstreamHeaders') ?? 0;
  assert.ok(faults >= 2, `faults counted: ${faults}`);

  // The rebuilt path (the client sent a name the add-only tap declares): the same pairs dropped there too.
  const rebuilt = await upstreamHead(kernel.url, ['X-Added: from-client']);
  assert.ok(rebuilt.includes('X-Ok: 1') && rebuilt.includes('x-added: fine'), `rebuilt: ${rebuilt.join(' | ')}`);
  assert.ok(!rebuilt.some((line) => /x-smuggled|x-evil|^get \/other/i.test(line)), `rebuilt: ${rebuilt.join(' | ')}`);
  assert.ok((kernel.faults.counts().get('hook:upstreamHeaders') ?? 0) > faults);
});

test('a tap may not declare it adds a framing header, nor a name that is not a token', async () => {
  for (const adds of [['Content-Length'], ['transfer-encoding'], ['host'], ['x ok'], ['x\r\ny']]) {
    const plugin = definePlugin({
      name: 'framing-adder',
      version: '1.0.0',
      kernel: '^1',
      setup(ctx) {
        ctx.hooks.upstreamHeaders.tap(() => undefined, { adds });
      },
    });
    await assert.rejects(createTestKernel({ plugins: [...servePlugins, plugin], config: { services: {} } }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'TNM_ERR_PLUGIN_SETUP', `${adds[0]}: ${error.message}`);
      assert.match(error.message, /framing-adder/);
      return true;
    });
  }
});

test('dropUnwritablePairs keeps good pairs in order and drops the rest in place', () => {
  const headers = ['a', '1', 'b', 'x\ny', 'c', '3', 'd e', '4', 'f', '\t ok \u00e9', 'g'];
  const problem = dropUnwritablePairs(headers);
  assert.deepEqual(headers, ['a', '1', 'c', '3', 'f', '\t ok \u00e9']);
  assert.match(problem ?? '', /value of b/);
  const clean = ['x', 'y'];
  assert.equal(dropUnwritablePairs(clean), null);
  assert.deepEqual(clean, ['x', 'y']);
});
