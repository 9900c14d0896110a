// Service discovery's DNS responder over real UDP and TCP on loopback (dns-packet on the wire, node:dns as the
// client), and the loopback listener host-network tenants call through, behind a real kernel: answers, refusals,
// hostile packets, floods, and what the discovery listener must never serve.
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import dnsPacket from 'dns-packet';
import { pino } from 'pino';
import { createTestKernel } from '../../core/test-kernel.ts';
import discovery from '../../plugins/discovery/index.ts';
import { DnsResponder, RateLimiter } from '../../plugins/discovery/responder.ts';
import { answer, parseZoneName, RCODE, type ZoneView } from '../../plugins/discovery/zone.ts';
import { FIXTURES, getJson, servePlugins } from '../helpers.ts';
import { rawExchange } from '../raw-http.ts';

const log = pino({ level: 'silent' });

/** A caller allowed `notes` (instances alice, and any id under `auto`), nothing else. */
const view: ZoneView = {
  allowed: (service) => service === 'notes' || service === 'auto',
  instanceKnown: (service, id) => service === 'auto' || id === 'alice',
  address: '10.9.8.1',
  port: 80,
};

async function responder(t: TestContext, options: { view?: (address: string) => ZoneView | null } = {}): Promise<DnsResponder> {
  const started = await DnsResponder.start({ host: '127.0.0.1', port: 0, view: options.view ?? (() => view), log });
  t.after(() => started.close());
  assert.deepEqual(started.listening, { udp: true, tcp: true });
  return started;
}

function resolver(port: number): dns.promises.Resolver {
  const r = new dns.promises.Resolver({ timeout: 2_000, tries: 2 });
  r.setServers([`127.0.0.1:${port}`]);
  return r;
}

const query = (name: string, type: 'A' | 'AAAA' | 'SRV' | 'TXT' = 'A', id = 7): Buffer =>
  dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });

/** A decoded answer as dns-packet gives it (its types leave out the header's rcode). */
type Reply = dnsPacket.DecodedPacket & { rcode: string; answers: dnsPacket.Answer[]; additionals: dnsPacket.Answer[] };
const decode = (buffer: Buffer): Reply => dnsPacket.decode(buffer) as Reply;

/** One UDP exchange: the decoded answer, or null when nothing came back within `ms`. */
function udpAsk(port: number, packet: Buffer, ms = 1_000): Promise<Reply | null> {
  return new Promise((resolve) => {
    const socket = dgram.createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(null);
    }, ms);
    socket.once('message', (message) => {
      clearTimeout(timer);
      socket.close();
      resolve(decode(message));
    });
    socket.send(packet, port, '127.0.0.1');
  });
}

test('answers: A and SRV for allowed names, NXDOMAIN for unknown or denied, REFUSED outside the zone (UDP, node:dns)', async (t) => {
  const dnsServer = await responder(t);
  const r = resolver(dnsServer.port);
  assert.deepEqual(await r.resolve4('notes.tenement.internal'), ['10.9.8.1']);
  assert.deepEqual(await r.resolve4('alice.notes.tenement.internal'), ['10.9.8.1']);
  assert.deepEqual(await r.resolve4('NOTES.Tenement.Internal'), ['10.9.8.1'], 'names are case-insensitive');
  assert.deepEqual(await r.resolve4('whoever.auto.tenement.internal'), ['10.9.8.1'], 'an id autoCreate would make');
  const srv = await r.resolveSrv('_http._tcp.alice.notes.tenement.internal');
  // Node 26 adds `type: 'SRV'` to each record: compare the record's own fields.
  assert.deepEqual(
    srv.map(({ name, port, priority, weight }) => ({ name, port, priority, weight })),
    [{ name: 'alice.notes.tenement.internal', port: 80, priority: 0, weight: 1 }],
  );
  for (const name of ['billing.tenement.internal', 'bob.notes.tenement.internal', 'a.b.notes.tenement.internal', 'tenement.internal', '__proto__.tenement.internal', 'constructor.tenement.internal', '-x.tenement.internal']) {
    await assert.rejects(r.resolve4(name), { code: 'ENOTFOUND' }, name);
  }
  await assert.rejects(r.resolve4('example.com'), { code: 'EREFUSED' });
  // No IPv6 here: an allowed name has no AAAA (no data), not NXDOMAIN (which would hide its A from getaddrinfo).
  const aaaa = await udpAsk(dnsServer.port, query('notes.tenement.internal', 'AAAA'));
  assert.equal(aaaa?.rcode, 'NOERROR');
  assert.equal(aaaa?.answers.length, 0);
  const a = await udpAsk(dnsServer.port, query('notes.tenement.internal', 'A', 4242));
  assert.equal(a?.id, 4242);
  assert.equal(a?.flag_aa, true);
  assert.equal(a?.flag_rd, true);
});

test('answer(): one question per query, QUERY only, responses dropped; parseZoneName never takes prototype keys', () => {
  const base = { id: 1, type: 'query' as const, flags: 0, answers: [], authorities: [], additionals: [] };
  const two = answer({ ...base, questions: [{ type: 'A', name: 'notes.tenement.internal' }, { type: 'A', name: 'alice.notes.tenement.internal' }] } as never, view);
  assert.equal((two!.flags ?? 0) & 0xf, RCODE.FORMERR);
  const none = answer({ ...base, questions: [] } as never, view);
  assert.equal((none!.flags ?? 0) & 0xf, RCODE.FORMERR);
  const update = answer({ ...base, flags: 5 << 11, questions: [{ type: 'A', name: 'notes.tenement.internal' }] } as never, view);
  assert.equal((update!.flags ?? 0) & 0xf, RCODE.NOTIMP);
  assert.equal(answer({ ...base, type: 'response', questions: [{ type: 'A', name: 'notes.tenement.internal' }] } as never, view), null);
  assert.equal(parseZoneName('__proto__.tenement.internal'), 'invalid');
  assert.deepEqual(parseZoneName('notes.tenement.internal.'), { service: 'notes', id: null, srv: false }, 'a trailing dot is the same name');
  assert.deepEqual(parseZoneName('_http._tcp.a.notes.tenement.internal'), { service: 'notes', id: 'a', srv: true });
  assert.equal(parseZoneName('tenement.internal.evil.com'), 'outside');
});

test('TCP (two-byte length prefix): pipelined queries answered in order; a bad length closes the connection', async (t) => {
  const dnsServer = await responder(t);
  const frame = (packet: Buffer): Buffer => Buffer.concat([Buffer.from([packet.length >> 8, packet.length & 0xff]), packet]);
  const answers = await new Promise<Reply[]>((resolve, reject) => {
    const socket = net.connect(dnsServer.port, '127.0.0.1');
    let pending = Buffer.alloc(0);
    const got: Reply[] = [];
    socket.on('data', (chunk) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        got.push(decode(pending.subarray(2, 2 + pending.readUInt16BE(0))));
        pending = pending.subarray(2 + pending.readUInt16BE(0));
      }
      if (got.length === 2) {
        socket.end();
        resolve(got);
      }
    });
    socket.on('error', reject);
    // Both in one write, the second split across two: framing, not segments, delimits them.
    const second = frame(query('billing.tenement.internal', 'A', 2));
    socket.write(Buffer.concat([frame(query('_http._tcp.notes.tenement.internal', 'SRV', 1)), second.subarray(0, 5)]));
    setTimeout(() => socket.write(second.subarray(5)), 20);
  });
  assert.deepEqual(answers.map((a) => [a.id, a.rcode, a.answers.length]), [[1, 'NOERROR', 1], [2, 'NXDOMAIN', 0]]);
  assert.equal(answers[0]!.additionals[0]?.type, 'A', 'the SRV target comes with its address');

  const closed = await new Promise<boolean>((resolve) => {
    const socket = net.connect(dnsServer.port, '127.0.0.1', () => socket.write(Buffer.from([0xff, 0xff, 1, 2, 3])));
    socket.on('close', () => resolve(true));
    socket.on('error', () => undefined);
    socket.setTimeout(5_000, () => resolve(false));
  });
  assert.equal(closed, true, 'a 65535-byte length is refused at once');
});

test('hostile packets are dropped without a crash; a flood is bounded and the responder still answers', async (t) => {
  const dnsServer = await responder(t);
  const garbage = [
    Buffer.alloc(0),
    Buffer.from([1, 2, 3]),
    Buffer.alloc(11),
    // A header claiming 65535 questions over a short body.
    Buffer.from([0, 1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 3, 97, 98, 99]),
    // A name whose compression pointer points at itself.
    Buffer.from([0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]),
    Buffer.alloc(4000, 0x41),
    // A response (QR set) to the responder: never answered (no reflection loops).
    dnsPacket.encode({ type: 'response', id: 3, questions: [{ type: 'A', name: 'notes.tenement.internal' }], answers: [] }),
  ];
  for (const packet of garbage) assert.equal(await udpAsk(dnsServer.port, packet, 200), null, `no answer to ${packet.subarray(0, 16).toString('hex')}`);
  assert.ok(dnsServer.stats.dropped >= garbage.length);

  // 20,000 queries as fast as one socket sends them: past the per-source burst they are dropped, memory stays flat.
  const before = process.memoryUsage().heapUsed;
  const socket = dgram.createSocket('udp4');
  t.after(() => socket.close());
  const packet = query('notes.tenement.internal');
  for (let i = 0; i < 20_000; i++) {
    socket.send(packet, dnsServer.port, '127.0.0.1');
    if (i % 500 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  const grown = process.memoryUsage().heapUsed - before;
  assert.ok(grown < 50 * 1024 * 1024, `heap grew ${grown} bytes`);
  assert.ok(dnsServer.stats.answered + dnsServer.stats.dropped >= 200, JSON.stringify(dnsServer.stats));
  // Still serving the same source (127.0.0.1) once its bucket refilled (1000/s, so within the resolver's retries).
  assert.deepEqual(await resolver(dnsServer.port).resolve4('notes.tenement.internal'), ['10.9.8.1']);

  // The table of sources is bounded whatever the number of addresses.
  const limiter = new RateLimiter(1, 1);
  for (let i = 0; i < 5_000; i++) limiter.take(`10.0.${i >> 8}.${i & 0xff}`, 0);
  assert.ok(limiter.size <= 1024, String(limiter.size));
  assert.equal(limiter.take('10.0.0.0', 0), true, 'forgotten sources start with a full bucket');
  assert.equal(limiter.take('10.0.0.0', 0), false);
});

test('a caller the responder does not serve gets REFUSED (a private listener answers its own instance only)', async (t) => {
  const dnsServer = await responder(t, { view: () => null });
  await assert.rejects(resolver(dnsServer.port).resolve4('notes.tenement.internal'), { code: 'EREFUSED' });
});

test('a busy port is a warning naming the address, not a crash', async (t) => {
  const first = await responder(t);
  const warnings: string[] = [];
  const warnLog = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(line) });
  const second = await DnsResponder.start({ host: '127.0.0.1', port: first.port, view: () => view, log: warnLog });
  t.after(() => second.close());
  assert.deepEqual(second.listening, { udp: false, tcp: false });
  assert.ok(warnings.some((line) => line.includes(`127.0.0.1:${first.port}`) && line.includes('EADDRINUSE')), warnings.join('\n'));
});

test('host-network tenants: TENEMENT_DNS and the loopback listener; it serves the zone only, never management', async (t) => {
  const kernel = await createTestKernel({
    plugins: [...servePlugins, discovery],
    config: {
      services: {
        notes: { command: `node ${path.join(FIXTURES, 'discovery-app.mjs')}`, health: '/health', cwd: FIXTURES, idleTimeout: '1h' },
      },
    },
  });
  t.after(() => kernel.close());
  const alice = await kernel.spawnInstance('notes', 'alice');
  assert.equal(alice.state, 'running', alice.lastError ?? '');
  const { TENEMENT_DNS } = await getJson<{ TENEMENT_DNS: string }>(kernel, 'alice.notes.localhost', '/env');
  const [host, dnsPort] = TENEMENT_DNS.split(':');
  assert.equal(host, '127.0.0.1');
  const r = resolver(Number(dnsPort));
  assert.deepEqual(await r.resolve4('alice.notes.tenement.internal'), ['127.0.0.1']);
  await assert.rejects(r.resolve4('billing.tenement.internal'), { code: 'ENOTFOUND' });
  const [srv] = await r.resolveSrv('_http._tcp.notes.tenement.internal');
  const listener = `http://127.0.0.1:${srv!.port}`;
  const metrics = await kernel.metricsRegistry.getSingleMetricAsString('tenement_discovery_queries_total');
  assert.match(metrics, /tenement_discovery_queries_total\{answer="noerror"\} [2-9]/, metrics);
  assert.match(metrics, /tenement_discovery_queries_total\{answer="nxdomain"\} [1-9]/, metrics);

  // The same proxy path: a hibernated instance is woken by a call by name.
  await kernel.hibernate(alice);
  const woken = await rawExchange(listener, ['GET / HTTP/1.1\r\nHost: alice.notes.tenement.internal\r\nConnection: close\r\n\r\n'], () => false);
  assert.match(woken.text, /^HTTP\/1\.1 200/);
  assert.match(woken.text, /"me":"notes:alice"/);
  assert.equal(alice.state, 'running');

  const refused = async (head: string): Promise<string> => (await rawExchange(listener, [head], () => false, { resetIsClose: true })).text;
  // The management surface by its host, by an IP, through the node:http path (HTTP/1.0, an upgrade), and junk names.
  for (const head of [
    'GET /api/instances HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    'GET /api/instances HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n',
    'GET /api/instances HTTP/1.0\r\nHost: localhost\r\n\r\n',
    'GET /api/instances HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: alice.notes.localhost\r\nConnection: close\r\n\r\n',
    'GET /api/instances HTTP/1.1\r\nHost: tenement.internal\r\nConnection: close\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: __proto__.tenement.internal\r\nConnection: close\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: _http._tcp.notes.tenement.internal\r\nConnection: close\r\n\r\n',
  ]) {
    const text = await refused(head);
    assert.match(text, /^HTTP\/1\.1 403/, `${head.split('\r\n').slice(0, 2).join(' ')} -> ${text}`);
    assert.match(text, /TNM_ERR_EGRESS_DENIED/);
    assert.doesNotMatch(text, /"instances"/);
  }
  const unknown = await refused('GET / HTTP/1.1\r\nHost: bob.notes.tenement.internal\r\nConnection: close\r\n\r\n');
  assert.match(unknown, /^HTTP\/1\.1 404/, 'an unknown instance: the router\'s own answer');

  // On the main listener a zone name is no tenant host: it does not route around the policy.
  const main = await rawExchange(kernel, ['GET / HTTP/1.1\r\nHost: alice.notes.tenement.internal\r\nConnection: close\r\n\r\n'], () => false);
  assert.match(main.text, /^HTTP\/1\.1 404/);
  assert.match(main.text, /TNM_ERR_UNKNOWN_HOST/);
});

test('bad plugin options stop start-up naming the field', async () => {
  await assert.rejects(
    createTestKernel({ plugins: [...servePlugins, discovery], config: { pluginOptions: { discovery: { dnsPort: 70_000 } } } }),
    /discovery options: dnsPort/,
  );
});
