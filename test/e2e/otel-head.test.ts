// The head tracing sends upstream (the upstreamHeaders tap declared add-only, TapOptions.adds): a request without
// trace headers goes as received, byte for byte, plus one traceparent line; one with its own is rebuilt and gets
// exactly one traceparent, Tenement's, never the client's beside it. The instance (test/fixtures/raw-head-app.mjs)
// answers with the head bytes it got.
import assert from 'node:assert/strict';
import path from 'node:path';
import { test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import otel from '../../plugins/otel/index.ts';
import { FIXTURES, servePlugins } from '../helpers.ts';
import { startOtlpReceiver } from '../otlp-receiver.ts';
import { rawExchange } from '../raw-http.ts';

for (const name of Object.keys(process.env)) if (name.startsWith('OTEL_')) delete process.env[name];

const HOST = 'alice.raw.localhost';
const TRACEPARENT = /^traceparent: 00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;

/** The head the instance received, split into lines (the blank line dropped). */
async function upstreamHead(url: string, lines: readonly string[]): Promise<string[]> {
  const answer = await rawExchange(url, [`GET /raw HTTP/1.1\r\nHost: ${HOST}\r\n${lines.map((l) => `${l}\r\n`).join('')}\r\n`], (text) => {
    const at = text.indexOf('\r\n\r\n');
    const length = /\r\ncontent-length: (\d+)\r\n/i.exec(text.slice(0, at + 2));
    return at !== -1 && length !== null && text.length >= at + 4 + Number(length[1]);
  });
  const body = answer.text.slice(answer.text.indexOf('\r\n\r\n') + 4);
  assert.ok(body.endsWith('\r\n\r\n'), `the instance got a whole head: ${JSON.stringify(answer.text)}`);
  return body.slice(0, -4).split('\r\n');
}

const traceLines = (head: readonly string[]): string[] => head.filter((line) => /^trace(parent|state)\s*:/i.test(line));

test('tracing adds its traceparent to the head as received, and replaces a client\'s', { timeout: 60_000 }, async (t) => {
  const receiver = await startOtlpReceiver();
  const kernel = await createTestKernel({
    plugins: [...servePlugins, otel],
    config: {
      settings: { otel: { endpoint: receiver.url, shutdownTimeout: '500ms' } },
      services: { raw: { command: process.execPath, args: [path.join(FIXTURES, 'raw-head-app.mjs')], health: '/health', idleTimeout: false } },
    },
  });
  t.after(() => kernel.close().finally(() => receiver.close()));
  await kernel.spawnInstance('raw', 'alice');
  const url = kernel.url;

  // No trace headers: the client's lines as they came (odd spacing, case, order), X-Forwarded-*, then ours.
  const plain = await upstreamHead(url, ['X-Odd:   spaced  value ', 'accept: */*', 'X-Last:\tv']);
  assert.deepEqual(plain.slice(0, 5), ['GET /raw HTTP/1.1', `Host: ${HOST}`, 'X-Odd:   spaced  value ', 'accept: */*', 'X-Last:\tv'], 'the head goes as received');
  assert.equal(plain[5], 'X-Forwarded-For: 127.0.0.1');
  assert.match(plain.at(-1)!, TRACEPARENT, 'one traceparent, last');
  assert.equal(traceLines(plain).length, 1);

  // The client's own, in any case, once, twice, or tracestate alone: exactly one of each name reaches the instance.
  const theirs = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  const one = await upstreamHead(url, [`TraceParent: ${theirs}`, 'tracestate: vendor=abc']);
  assert.deepEqual(traceLines(one).map((l) => l.split(':')[0]), ['traceparent', 'tracestate'], `the client's replaced: ${one.join(' | ')}`);
  const continued = TRACEPARENT.exec(traceLines(one)[0]!);
  assert.equal(continued?.[1], '4bf92f3577b34da6a3ce929d0e0e4736', "a client's valid traceparent continues its trace");
  assert.notEqual(continued?.[2], '00f067aa0ba902b7');
  assert.equal(traceLines(one)[1], 'tracestate: vendor=abc');

  const twice = await upstreamHead(url, [`traceparent: ${theirs}`, 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01']);
  assert.equal(traceLines(twice).length, 1, `two client traceparents: one line goes upstream, ours: ${twice.join(' | ')}`);
  const fresh = TRACEPARENT.exec(traceLines(twice)[0]!);
  assert.ok(fresh, 'a traceparent of ours');
  assert.ok(fresh[1] !== '4bf92f3577b34da6a3ce929d0e0e4736' && fresh[1] !== '0af7651916cd43dd8448eb211c80319c', 'two traceparents are no valid parent: a new trace');

  const stateOnly = await upstreamHead(url, ['Tracestate: vendor=abc']);
  assert.equal(traceLines(stateOnly).length, 1, `a tracestate without traceparent is dropped: ${stateOnly.join(' | ')}`);
  assert.match(traceLines(stateOnly)[0]!, TRACEPARENT);

  // A tap that does not declare what it adds (it may remove or replace lines) gets the rebuilt head, as before.
  kernel.hooks.upstreamHeaders.tap('test-editor', ({ headers }) => {
    headers.push('X-Edited', 'yes');
  });
  const edited = await upstreamHead(url, ['X-Odd:   spaced  value ', '__proto__: x']);
  assert.ok(edited.includes('X-Odd: spaced  value') && edited.includes('__proto__: x') && edited.includes('X-Edited: yes'), `rebuilt and edited: ${edited.join(' | ')}`);
  assert.equal(traceLines(edited).length, 1);

  // Each CLIENT span (timed from the kernel's readings: routed, reported) lies within its SERVER span.
  await kernel.close();
  const servers = new Map(receiver.spans.filter((s) => s.kind === 2).map((s) => [s.spanId, s]));
  const clients = receiver.spans.filter((s) => s.kind === 3);
  assert.equal(clients.length, 5, 'a CLIENT span per request');
  for (const client of clients) {
    const server = servers.get(client.parentSpanId);
    assert.ok(server, 'its SERVER span was exported');
    assert.ok(server.startNs <= client.startNs && client.startNs < client.endNs && client.endNs <= server.endNs, `CLIENT within SERVER: ${server.startNs} <= ${client.startNs} < ${client.endNs} <= ${server.endNs}`);
  }
});
