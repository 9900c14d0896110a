// The fleet's relayed event streams (plugins/fleet/relay-stream.ts): the owner's SSE answer copied to the client,
// signed with the caller's identity; bounded in streams open at once, bytes and time; an owner's refusal passed on
// with its status; a client that leaves ends the owner's stream too. Real sockets on loopback, no NATS.
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { API_HEADER, verifyApiCall } from '../../plugins/fleet/relay.ts';
import { StreamRelay } from '../../plugins/fleet/relay-stream.ts';

const SECRET = 'test-fleet-secret-0123456789abcdef';

async function listen(handler: http.RequestListener): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

test('a relayed stream: signed, copied, bounded in bytes and count; refusals passed on; closed with its client', async (t) => {
  const ownerClosed: string[] = [];
  const callers: string[] = [];
  const owner = await listen((req, res) => {
    const checked = verifyApiCall(SECRET, 'owner', String(req.headers[API_HEADER] ?? ''), 'GET', req.url ?? '');
    callers.push(checked ? `${checked.node}:${checked.identity.name}` : 'unsigned');
    if (req.url?.startsWith('/refuse')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      return res.end(JSON.stringify({ error: { code: 'TNM_ERR_UNKNOWN_INSTANCE', message: 'no' } }));
    }
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.once('close', () => ownerClosed.push(req.url ?? ''));
    if (req.url?.startsWith('/flood')) {
      // Far more than the bound: the relay stops copying and ends the client's stream.
      const line = `data: ${'x'.repeat(1000)}\n\n`;
      const pump = (): void => {
        while (!res.destroyed && res.write(line));
        if (!res.destroyed) res.once('drain', pump);
      };
      pump();
      return;
    }
    res.write('data: first\n\n');
  });
  const relay = new StreamRelay(SECRET, 'front', { maxStreams: 1, maxBytes: 64 * 1024, maxMs: 60_000, connectMs: 10_000 });
  const front = await listen((req, res) => {
    relay.relay('owner', owner.url, { kind: 'tenant', tenant: 'alice', name: 'alice' }, req.url ?? '/', res, () => undefined).then(
      (refused) => {
        if (refused) res.writeHead(refused.status, { 'content-type': 'application/json' }).end(JSON.stringify(refused.body));
      },
      (error: unknown) => res.writeHead(429).end(String(error)),
    );
  });
  t.after(() => {
    relay.close();
    front.server.closeAllConnections();
    owner.server.closeAllConnections();
    front.server.close();
    owner.server.close();
  });

  // Copied as it comes, signed as the caller.
  const abort = new AbortController();
  const live = await fetch(`${front.url}/live`, { signal: abort.signal });
  assert.equal(live.status, 200);
  assert.match(live.headers.get('content-type') ?? '', /text\/event-stream/);
  const reader = live.body!.getReader();
  const { value } = await reader.read();
  assert.match(new TextDecoder().decode(value), /data: first/);
  assert.deepEqual(callers, ['front:alice']);
  // One at a time here: a second is refused while the first is open.
  const second = await fetch(`${front.url}/live2`);
  assert.equal(second.status, 429, await second.text());
  // The client leaves: the owner's stream is closed too, and the slot is free again.
  abort.abort();
  await reader.read().catch(() => undefined);
  for (let i = 0; i < 500 && (relay.size > 0 || !ownerClosed.includes('/live')); i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(relay.size, 0);
  assert.ok(ownerClosed.includes('/live'), 'the owner\'s stream closed with its client');

  // An owner's refusal: its status and body, nothing streamed.
  const refused = await fetch(`${front.url}/refuse`);
  assert.equal(refused.status, 404);
  assert.match(await refused.text(), /TNM_ERR_UNKNOWN_INSTANCE/);

  // A flood: the client gets at most the bound (plus one chunk), then the end of the stream.
  const flood = await fetch(`${front.url}/flood`);
  const got = (await flood.arrayBuffer()).byteLength;
  assert.ok(got <= 64 * 1024 + 70_000, `${got} bytes copied`);
  assert.ok(got > 0);
});
