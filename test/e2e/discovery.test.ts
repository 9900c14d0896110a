// Service discovery end to end (issue 16): real namespaces, nftables, DNS over UDP/TCP and HTTP behind a real kernel.
// A private tenant calls services by name through the proxy, waking a hibernated one; a service its egress does
// not name neither resolves nor answers, even asked by address; the discovery listener serves only its zone.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import path from 'node:path';
import type { ConfigInput, ServiceInput } from '../../core/config/schema.ts';
import type { PluginEntry } from '../../core/plugin.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import discovery from '../../plugins/discovery/index.ts';
import network from '../../plugins/network/index.ts';
import namespaceRuntime from '../../runtimes/namespace/index.ts';
import sandboxRuntime from '../../runtimes/sandbox/index.ts';
import { FIXTURES, getJson, onPath, servePlugins, waitFor } from '../helpers.ts';
import { privateNetworkSkip, tenantRange } from '../private-network.ts';

const skip = privateNetworkSkip('network namespaces') || (onPath('bwrap') ? false : 'needs bwrap for the namespace tier (apt-get install bubblewrap)');
const { range: RANGE } = tenantRange();

const app = (overrides: Partial<ServiceInput> = {}): ServiceInput => ({
  command: `node ${path.join(FIXTURES, 'discovery-app.mjs')}`,
  health: '/health',
  cwd: FIXTURES,
  ...overrides,
});

interface Call {
  ok: boolean;
  status?: number;
  body?: string;
  code?: string;
}
interface Resolved {
  ok: boolean;
  records?: Array<string | { name: string; port: number }>;
  code?: string;
}
interface Who {
  me: string;
  host: string;
}

async function kernelWith(t: TestContext, config: ConfigInput, runtimes: PluginEntry[] = [namespaceRuntime]): Promise<TestKernel> {
  const kernel = await createTestKernel({
    plugins: [...servePlugins, network, ...runtimes, discovery],
    config: { ...config, settings: { network: { range: RANGE }, ...config.settings } },
  });
  t.after(() => kernel.close());
  return kernel;
}

const get = <T>(kernel: TestKernel, host: string, url: string): Promise<T> => getJson<T>(kernel, host, url, { timeoutMs: 30_000 });
const q = encodeURIComponent;

describe('service discovery', { timeout: 180_000, skip }, () => {
  test('a private tenant calls services by name, waking one; denied names do not resolve and are refused', async (t) => {
    const kernel = await kernelWith(t, {
      services: {
        notes: app({ idleTimeout: '1h' }),
        billing: app(),
        // The caller: namespace tier, so /etc/resolv.conf is the generated one and plain fetch resolves by name.
        web: app({ network: 'private', isolation: 'namespace', egress: ['notes'] }),
        // The process tier shares the host's /etc: it resolves with the server in TENEMENT_DNS.
        worker: app({ network: 'private', egress: ['notes'] }),
        // Private without a service name: no discovery, and its host side's discovery ports stay closed.
        plain: app({ network: 'private' }),
        // Allowed billing, not notes: must not get notes from a route another caller's call cached.
        cron: app({ network: 'private', egress: ['billing'] }),
      },
    });
    const alice = await kernel.spawnInstance('notes', 'alice');
    await kernel.spawnInstance('billing', 'x');
    await kernel.hibernate(alice);
    assert.equal(alice.state, 'hibernated');
    const web = await kernel.spawnInstance('web', 'a');
    assert.equal(web.state, 'running', web.lastError ?? '');

    // By service name, with the system resolver (glibc reads the bound resolv.conf): the call wakes notes:alice.
    const byService = await get<Call>(kernel, 'a.web.localhost', `/call?url=${q('http://notes.tenement.internal/')}`);
    assert.equal(byService.ok, true, JSON.stringify(byService));
    assert.equal(byService.status, 200, byService.body);
    const served = JSON.parse(byService.body!) as Who;
    assert.equal(served.me, 'notes:alice');
    assert.equal(served.host, 'notes.tenement.internal', 'the app sees the name it was called by');
    assert.equal(alice.state, 'running', 'woken by the call');
    // By instance name.
    const byInstance = await get<Call>(kernel, 'a.web.localhost', `/call?url=${q('http://alice.notes.tenement.internal/')}`);
    assert.equal(JSON.parse(byInstance.body!).me, 'notes:alice');

    // Its resolver is its host side: SRV gives the port.
    const { TENEMENT_DNS } = await get<{ TENEMENT_DNS: string }>(kernel, 'a.web.localhost', '/env');
    const hostSide = TENEMENT_DNS.split(':')[0]!;
    assert.match(TENEMENT_DNS, /^10\.\d+\.\d+\.\d+:53$/);
    const srv = await get<Resolved>(kernel, 'a.web.localhost', `/resolve?type=SRV&name=${q('_http._tcp.notes.tenement.internal')}`);
    assert.deepEqual(srv.records?.map((r) => (typeof r === 'string' ? r : { name: r.name, port: r.port })), [{ name: 'notes.tenement.internal', port: 80 }]);
    const a = await get<Resolved>(kernel, 'a.web.localhost', `/resolve?name=${q('alice.notes.tenement.internal')}`);
    assert.deepEqual(a.records, [hostSide]);

    // billing is not in web's egress: NXDOMAIN through the system resolver and through TENEMENT_DNS.
    assert.deepEqual(await get<Call>(kernel, 'a.web.localhost', `/lookup?name=${q('billing.tenement.internal')}`), { ok: false, code: 'ENOTFOUND' });
    assert.deepEqual(await get<Resolved>(kernel, 'a.web.localhost', `/resolve?name=${q('billing.tenement.internal')}`), { ok: false, code: 'ENOTFOUND' });
    assert.deepEqual(await get<Resolved>(kernel, 'a.web.localhost', `/resolve?name=${q('x.billing.tenement.internal')}`), { ok: false, code: 'ENOTFOUND' });
    // A name outside the zone is REFUSED (glibc then asks the host's resolvers, if egress lets it).
    assert.deepEqual(await get<Resolved>(kernel, 'a.web.localhost', `/resolve?name=${q('example.com')}`), { ok: false, code: 'EREFUSED' });

    // Guessing the address with a Host header: refused by the proxy, with a code.
    const raw = (hostHeader: string, url = '/'): Promise<Call> =>
      get<Call>(kernel, 'a.web.localhost', `/raw?host=${hostSide}&port=80&hostHeader=${q(hostHeader)}&path=${q(url)}`);
    const guessed = await raw('billing.tenement.internal');
    assert.equal(guessed.status, 403, guessed.body);
    assert.match(guessed.body!, /TNM_ERR_EGRESS_DENIED/);
    assert.match(guessed.body!, /web:a may not call 'billing'/);
    assert.equal(kernel.instances.get('billing', 'x')?.state, 'running');
    // The management surface, another tenant's public host, an IP: never served on the discovery listener.
    for (const [hostHeader, url] of [['localhost', '/api/instances'], ['localhost', '/health'], ['x.billing.localhost', '/'], [hostSide, '/api/instances'], ['__proto__.tenement.internal', '/'], ['tenement.internal', '/api/instances']] as const) {
      const refused = await raw(hostHeader, url);
      assert.equal(refused.status, 403, `${hostHeader}${url}: ${refused.body}`);
      assert.match(refused.body!, /TNM_ERR_EGRESS_DENIED/);
    }
    // The allowed service by address + Host works the same as by name.
    assert.equal(JSON.parse((await raw('alice.notes.tenement.internal')).body!).me, 'notes:alice');

    // The process tier: the same, with its resolver given in TENEMENT_DNS.
    const worker = await kernel.spawnInstance('worker', 'a');
    assert.equal(worker.state, 'running', worker.lastError ?? '');
    const workerDns = (await get<{ TENEMENT_DNS: string }>(kernel, 'a.worker.localhost', '/env')).TENEMENT_DNS;
    assert.notEqual(workerDns, TENEMENT_DNS, 'each private instance has its own host side');
    const resolved = await get<Resolved>(kernel, 'a.worker.localhost', `/resolve?name=${q('notes.tenement.internal')}`);
    assert.deepEqual(resolved.records, [workerDns.split(':')[0]]);
    assert.deepEqual(await get<Resolved>(kernel, 'a.worker.localhost', `/resolve?name=${q('billing.tenement.internal')}`), { ok: false, code: 'ENOTFOUND' });
    const viaWorker = await get<Call>(kernel, 'a.worker.localhost', `/raw?host=${workerDns.split(':')[0]}&port=80&hostHeader=notes.tenement.internal&path=/`);
    assert.equal(JSON.parse(viaWorker.body!).me, 'notes:alice');
    // web's host side is not worker's: the neighbour rule holds for discovery listeners too.
    const neighbour = await get<Call>(kernel, 'a.worker.localhost', `/raw?host=${hostSide}&port=80&hostHeader=notes.tenement.internal&path=/`);
    assert.equal(neighbour.ok, false, JSON.stringify(neighbour));

    // The route cache holds alice.notes (web and worker called it): cron, whose egress names billing only, is
    // still refused it, by name and by address + Host; its own service answers.
    const cron = await kernel.spawnInstance('cron', 'a');
    assert.equal(cron.state, 'running', cron.lastError ?? '');
    const cronSide = (await get<{ TENEMENT_DNS: string }>(kernel, 'a.cron.localhost', '/env')).TENEMENT_DNS.split(':')[0]!;
    assert.deepEqual(await get<Resolved>(kernel, 'a.cron.localhost', `/resolve?name=${q('alice.notes.tenement.internal')}`), { ok: false, code: 'ENOTFOUND' });
    const cronToNotes = await get<Call>(kernel, 'a.cron.localhost', `/raw?host=${cronSide}&port=80&hostHeader=alice.notes.tenement.internal&path=/`);
    assert.equal(cronToNotes.status, 403, cronToNotes.body);
    const cronToBilling = await get<Call>(kernel, 'a.cron.localhost', `/raw?host=${cronSide}&port=80&hostHeader=x.billing.tenement.internal&path=/`);
    assert.equal(JSON.parse(cronToBilling.body!).me, 'billing:x');

    const plain = await kernel.spawnInstance('plain', 'a');
    assert.equal(plain.state, 'running', plain.lastError ?? '');
    assert.deepEqual(await get<{ TENEMENT_DNS: string | null }>(kernel, 'a.plain.localhost', '/env'), { TENEMENT_DNS: null });
    // Its host side is the address before its own (the /30's first): refused by its rules (EHOSTUNREACH), not by a
    // missing listener (ECONNREFUSED), on both discovery ports.
    const own = plain.toJSON().address!.split(':')[0]!.split('.');
    const plainHostSide = [...own.slice(0, 3), String(Number(own[3]) - 1)].join('.');
    for (const port of [53, 80]) {
      const closed = await get<Call>(kernel, 'a.plain.localhost', `/raw?host=${plainHostSide}&port=${port}&hostHeader=notes.tenement.internal&path=/`);
      assert.deepEqual(closed, { ok: false, code: 'EHOSTUNREACH' }, `port ${port}`);
    }

    // A host-network tenant: a loopback responder in TENEMENT_DNS, 127.0.0.1 and the loopback listener's port.
    const hostDns = (await get<{ TENEMENT_DNS: string }>(kernel, 'alice.notes.localhost', '/env')).TENEMENT_DNS;
    assert.match(hostDns, /^127\.0\.0\.1:\d+$/);
    const hostSrv = await get<Resolved>(kernel, 'alice.notes.localhost', `/resolve?type=SRV&name=${q('_http._tcp.x.billing.tenement.internal')}`);
    const port = (hostSrv.records?.[0] as { port: number } | undefined)?.port;
    assert.ok(port && port > 0, JSON.stringify(hostSrv));
    const hostCall = await get<Call>(kernel, 'alice.notes.localhost', `/raw?host=127.0.0.1&port=${port}&hostHeader=x.billing.tenement.internal&path=/`);
    assert.equal(JSON.parse(hostCall.body!).me, 'billing:x');
    const hostApi = await get<Call>(kernel, 'alice.notes.localhost', `/raw?host=127.0.0.1&port=${port}&hostHeader=localhost&path=/api/instances`);
    assert.equal(hostApi.status, 403, hostApi.body);

    // A hibernated caller's listeners go with its run; its next run gets them again.
    await kernel.hibernate(web);
    const again = await get<Call>(kernel, 'a.web.localhost', `/call?url=${q('http://alice.notes.tenement.internal/')}`);
    assert.equal(JSON.parse(again.body!).me, 'notes:alice');
    await waitFor(() => web.state === 'running', 'web running again');
  });

  test('the sandbox tier (gVisor) reads the same generated resolv.conf: fetch by name', { skip: onPath('runsc') ? false : 'needs runsc (apt-get install runsc)' }, async (t) => {
    const kernel = await kernelWith(
      t,
      { services: { notes: app(), web: app({ network: 'private', isolation: 'sandbox', egress: ['notes'], startupTimeout: '60s' }) } },
      [sandboxRuntime],
    );
    await kernel.spawnInstance('notes', 'alice');
    const web = await kernel.spawnInstance('web', 'a');
    assert.equal(web.state, 'running', web.lastError ?? '');
    const call = await get<Call>(kernel, 'a.web.localhost', `/call?url=${q('http://alice.notes.tenement.internal/')}`);
    assert.equal(call.status, 200, JSON.stringify(call));
    assert.equal(JSON.parse(call.body!).me, 'notes:alice');
    assert.deepEqual(await get<Call>(kernel, 'a.web.localhost', `/lookup?name=${q('billing.tenement.internal')}`), { ok: false, code: 'ENOTFOUND' });
  });
});
