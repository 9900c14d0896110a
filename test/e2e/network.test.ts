// Private networking end to end: real network namespaces, veth pairs and nftables rules, behind a real kernel.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import type { ConfigInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import network from '../../plugins/network/index.ts';
import { netNames } from '../../plugins/network/names.ts';
import namespaceRuntime from '../../runtimes/namespace/index.ts';
import { getJson, onPath, request, servePlugins, waitFor } from '../helpers.ts';
import { netService, privateNetworkSkip, tenantRange, type Connect } from '../private-network.ts';
import { rawExchange } from '../raw-http.ts';

const skip = privateNetworkSkip('network namespaces');
const plugins = [...servePlugins, network];

const { base: RANGE_BASE, range: RANGE } = tenantRange();
const FIRST = { host: `${RANGE_BASE}.1`, guest: `${RANGE_BASE}.2` };
const SECOND = { host: `${RANGE_BASE}.5`, guest: `${RANGE_BASE}.6` };

async function kernelWith(t: TestContext, config: ConfigInput, extra = plugins): Promise<TestKernel> {
  const kernel = await createTestKernel({ plugins: extra, config: { ...config, settings: { network: { range: RANGE }, ...config.settings } } });
  t.after(() => kernel.close());
  return kernel;
}

/** getJson with a short deadline: an answer held up (a connection left hanging) fails in 5 s, not 30. */
const getJsonSoon = <T>(kernel: TestKernel, host: string, url: string): Promise<T> => getJson<T>(kernel, host, url, { timeoutMs: 5_000 });

interface Whoami {
  env: { HOST?: string; PORT?: string; SOCKET_PATH?: string };
  interfaces: Record<string, string[]>;
}

/** Namespaces and host-side veths of a kernel's scope that exist right now. */
function leftOf(dataDir: string): string[] {
  const names = netNames(dataDir);
  const list = (dir: string, prefix: string): string[] => {
    try {
      return readdirSync(dir).filter((name) => name.startsWith(prefix));
    } catch {
      return [];
    }
  };
  return [...list('/run/netns', names.netnsPrefix), ...list('/sys/class/net', names.vethPrefix)];
}

/** A Unix socket server of "the host" (another program), counting connections; closed after the test. */
async function unixServer(t: TestContext): Promise<{ path: string; connections: () => number }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-foreign-'));
  let count = 0;
  const server = net.createServer((socket) => {
    count += 1;
    socket.on('error', () => undefined);
    socket.end('HTTP/1.1 200 OK\r\ncontent-length: 7\r\n\r\nforeign');
  });
  const socketPath = path.join(dir, 'foreign.sock');
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  // One hook, closing before removing the socket's folder (after-hooks stop at the first that throws).
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())).finally(() => rmSync(dir, { recursive: true, force: true })));
  return { path: socketPath, connections: () => count };
}

/** A TCP server on the host counting connections; closed after the test. */
async function hostServer(t: TestContext, host: string): Promise<{ port: number; connections: () => number }> {
  let count = 0;
  const server = net.createServer((socket) => {
    count += 1;
    // A tenant probing reachability may reset the connection at once: that is not a test failure.
    socket.on('error', () => undefined);
    socket.end('hello');
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.address() as net.AddressInfo).port, connections: () => count };
}

/** A non-loopback IPv4 address of the host outside the test range (its LAN address), if any. */
function hostLanAddress(): string | null {
  for (const list of Object.values(os.networkInterfaces())) {
    for (const entry of list ?? []) if (entry.family === 'IPv4' && !entry.internal && !entry.address.startsWith(RANGE_BASE)) return entry.address;
  }
  return null;
}

describe('network plugin', { timeout: 120_000, skip }, () => {
  test('private tenants: served through the proxy; no host loopback, no neighbour; only allowed addresses', async (t) => {
    const loopback = await hostServer(t, '127.0.0.1');
    // Bound on every host address: reachable through each instance's host-side veth address, if allowed.
    const anywhere = await hostServer(t, '0.0.0.0');
    const kernel = await kernelWith(t, { services: { priv: netService({ network: 'private', egress: [FIRST.host] }) } });
    const a = await kernel.spawnInstance('priv', 'a');
    const b = await kernel.spawnInstance('priv', 'b');
    assert.equal(a.state, 'running', a.lastError ?? '');
    assert.equal(b.state, 'running', b.lastError ?? '');

    const whoA = await getJsonSoon<Whoami>(kernel, 'a.priv.localhost', '/whoami');
    assert.equal(whoA.env.HOST, FIRST.guest, 'a private instance binds its own namespace address');
    assert.deepEqual(Object.keys(whoA.interfaces).sort(), ['eth0', 'lo']);
    assert.deepEqual(whoA.interfaces.eth0, [FIRST.guest]);
    assert.equal(a.toJSON().address, `${FIRST.guest}:${a.port}`);
    assert.equal(await a.handle?.ownsAddress?.(), true, 'the listener in the namespace is held by the instance');
    const whoB = await getJsonSoon<Whoami>(kernel, 'b.priv.localhost', '/whoami');
    assert.equal(whoB.env.HOST, SECOND.guest);

    // The host's loopback services: 127.0.0.1 inside is the namespace's own loopback.
    const toLoopback = await getJsonSoon<Connect>(kernel, 'a.priv.localhost', `/connect?host=127.0.0.1&port=${loopback.port}`);
    assert.equal(toLoopback.ok, false);
    assert.equal(loopback.connections(), 0, 'the host loopback server saw no connection');
    // A neighbour's address (and its port): refused by the egress rules.
    const toNeighbour = await getJsonSoon<Connect>(kernel, 'a.priv.localhost', `/connect?host=${SECOND.guest}&port=${b.port}`);
    // Rejected with ICMP admin-prohibited: the app fails at once (EHOSTUNREACH) instead of waiting for a timeout.
    assert.deepEqual(toNeighbour, { ok: false, code: 'EHOSTUNREACH' });
    // The allowed address: a's own host side.
    const allowed = await getJsonSoon<Connect>(kernel, 'a.priv.localhost', `/connect?host=${FIRST.host}&port=${anywhere.port}`);
    assert.deepEqual(allowed, { ok: true });
    assert.equal(anywhere.connections(), 1);
    // The same server through b's own host side is not on b's list; a's host side is a neighbour's: both refused.
    const bOwnSide = await getJsonSoon<Connect>(kernel, 'b.priv.localhost', `/connect?host=${SECOND.host}&port=${anywhere.port}`);
    assert.equal(bOwnSide.ok, false);
    const bToFirst = await getJsonSoon<Connect>(kernel, 'b.priv.localhost', `/connect?host=${FIRST.host}&port=${anywhere.port}`);
    assert.equal(bToFirst.ok, false);
    const lan = hostLanAddress();
    if (lan) {
      const toLan = await getJsonSoon<Connect>(kernel, 'a.priv.localhost', `/connect?host=${lan}&port=${anywhere.port}`);
      assert.equal(toLan.ok, false, `the host's own address ${lan} is not on the allow-list`);
    }
    assert.equal(anywhere.connections(), 1, 'only the allowed connection arrived');
  });

  test("network 'none': loopback only, served through SOCKET_PATH", async (t) => {
    const anywhere = await hostServer(t, '0.0.0.0');
    const kernel = await kernelWith(t, { services: { iso: netService({ network: 'none', listen: 'socket' }) } });
    const instance = await kernel.spawnInstance('iso', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    const who = await getJsonSoon<Whoami>(kernel, 'a.iso.localhost', '/whoami');
    assert.deepEqual(Object.keys(who.interfaces), ['lo']);
    assert.equal(who.env.SOCKET_PATH, path.join(kernel.instanceDir('iso', 'a'), 'app.sock'));
    assert.equal(who.env.PORT, undefined, 'no port to listen on');
    assert.equal(instance.handle?.address.socketPath, who.env.SOCKET_PATH);
    assert.equal(instance.toJSON().address, `unix:${who.env.SOCKET_PATH}`);
    const out = await getJsonSoon<Connect>(kernel, 'a.iso.localhost', `/connect?host=${hostLanAddress() ?? '10.0.0.1'}&port=${anywhere.port}`);
    assert.deepEqual(out, { ok: false, code: 'ENETUNREACH' });
    assert.equal(await instance.handle?.ownsAddress?.(), true, 'the socket is held by the instance');
  });

  test("listen: 'socket' on the host network, with tcp health checks", async (t) => {
    const kernel = await kernelWith(t, { services: { sock: netService({ listen: 'socket', health: undefined }) } });
    const instance = await kernel.spawnInstance('sock', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    const who = await getJsonSoon<Whoami>(kernel, 'a.sock.localhost', '/whoami');
    assert.ok(who.env.SOCKET_PATH && existsSync(who.env.SOCKET_PATH));
    assert.equal(who.env.HOST, undefined);
    assert.ok(Object.keys(who.interfaces).length > 1, 'the host network is visible');
    const check = await kernel.checkHealth(instance);
    assert.equal(check.ok, true, check.detail);
    assert.equal(check.detail, 'accepting connections');
    assert.equal(await instance.handle?.ownsAddress?.(), true);
    // The node:http path (HTTP/1.0 is handed to it) and an upgraded connection reach the socket too.
    // The patterns include what `until` waits for: an answer cut short by the server closing fails them.
    const old = await rawExchange(kernel, ['GET /health HTTP/1.0\r\nHost: a.sock.localhost\r\n\r\n'], (text) => text.endsWith('ok'), { timeoutMs: 5_000 });
    assert.match(old.text, /^HTTP\/1\.[01] 200[\s\S]*ok$/);
    const upgraded = await rawExchange(
      kernel,
      ['GET /echo HTTP/1.1\r\nHost: a.sock.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nping'],
      (text) => text.includes('ping'),
      { timeoutMs: 5_000 },
    );
    assert.match(upgraded.text, /^HTTP\/1\.1 101[\s\S]*ping/);
    // The tenant swaps its socket for a link to another socket of the host: the proxy keeps reaching the
    // socket it checked at readiness.
    const foreign = await unixServer(t);
    const socketPath = who.env.SOCKET_PATH;
    renameSync(socketPath, `${socketPath}.moved`);
    symlinkSync(foreign.path, socketPath);
    for (const via of ['/health', '/whoami']) assert.equal((await request(kernel, 'a.sock.localhost', via)).status, 200);
    assert.equal((await kernel.checkHealth(instance)).ok, true);
    assert.equal(foreign.connections(), 0, 'nothing reached the foreign socket');
    // A restart finds the old socket file and still starts (the stale socket is removed first).
    await kernel.supervisor.restart(instance);
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    assert.equal((await request(kernel, 'a.sock.localhost', '/health')).body, 'ok');
  });

  test('hibernate, wake and stop leave no namespace or veth behind', async (t) => {
    const kernel = await kernelWith(t, {
      services: { priv: netService({ network: 'private' }), iso: netService({ network: 'none', listen: 'socket' }) },
      pluginOptions: { network: { spare: false } },
    });
    const dataDir = kernel.config.settings.dataDir;
    const priv = await kernel.spawnInstance('priv', 'a');
    const iso = await kernel.spawnInstance('iso', 'a');
    assert.equal(priv.state, 'running', priv.lastError ?? '');
    assert.equal(iso.state, 'running', iso.lastError ?? '');
    assert.equal(leftOf(dataDir).length, 3, `two namespaces and one veth: ${leftOf(dataDir).join(' ')}`);

    await kernel.hibernate(priv);
    await kernel.hibernate(iso);
    await waitFor(() => leftOf(dataDir).length === 0, 'namespaces removed after hibernation', 5_000);

    assert.equal((await request(kernel, 'a.priv.localhost', '/health')).body, 'ok');
    assert.equal((await request(kernel, 'a.iso.localhost', '/health')).body, 'ok');
    assert.equal(leftOf(dataDir).length, 3);

    // A crash and its restart: the old namespace goes, the new run has its own.
    const oldPid = priv.handle!.pid!;
    const netnsBefore = leftOf(dataDir).sort();
    process.kill(oldPid, 'SIGKILL');
    await waitFor(() => priv.state === 'running' && priv.handle?.pid !== oldPid, 'the restart after a crash', 10_000);
    await waitFor(() => leftOf(dataDir).length === 3, 'one namespace per instance again', 5_000);
    assert.notDeepEqual(leftOf(dataDir).sort(), netnsBefore, 'the restart runs in a new namespace');

    await kernel.removeInstance(priv);
    await kernel.removeInstance(iso);
    await waitFor(() => leftOf(dataDir).length === 0, 'namespaces removed after stop', 5_000);
  });

  test("a crashed run's namespaces and veths are removed at start", async (t) => {
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-net-'));
    const names = netNames(dataDir);
    const netns = `${names.netnsPrefix}zz1`;
    const veth = `${names.vethPrefix}zz1`;
    t.after(() => {
      // Normally already gone (the plugin removed them): -force goes on past the errors, which are expected.
      try {
        execFileSync('ip', ['-force', '-batch', '-'], { input: `link del ${veth}\nnetns del ${netns}\n`, stdio: ['pipe', 'ignore', 'ignore'] });
      } catch {
        // Nothing left to remove.
      }
    });
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    assert.deepEqual(leftOf(dataDir).sort(), [netns, veth].sort());
    await kernelWith(t, { settings: { dataDir }, services: { priv: netService({ network: 'private' }) } });
    // Added after kernelWith's close: after-hooks run in the order added, and the kernel writes into it.
    t.after(() => rmSync(dataDir, { recursive: true, force: true }));
    assert.deepEqual(leftOf(dataDir).filter((name) => name === netns || name === veth), []);
  });

  test('a spare namespace per service is ready before the start, replaced after it, and removed at shutdown', async (t) => {
    const kernel = await createTestKernel({
      plugins,
      config: { settings: { network: { range: RANGE } }, services: { priv: netService({ network: 'private' }) } },
    });
    let closed = false;
    t.after(() => (closed ? undefined : kernel.close()));
    const dataDir = kernel.config.settings.dataDir;
    await waitFor(() => leftOf(dataDir).length === 2, 'a spare namespace and its veth', 5_000);
    const spare = leftOf(dataDir).sort();
    const instance = await kernel.spawnInstance('priv', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    // The instance took the spare (same names), and a new spare is being made.
    await waitFor(() => leftOf(dataDir).length === 4, 'the next spare', 5_000);
    assert.ok(spare.every((name) => leftOf(dataDir).includes(name)));
    await kernel.close();
    closed = true;
    assert.deepEqual(leftOf(dataDir), []);
  });

  test('the namespace tier runs inside the private namespace', { skip: onPath('bwrap') ? false : 'needs bwrap (apt-get install bubblewrap)' }, async (t) => {
    const loopback = await hostServer(t, '127.0.0.1');
    const kernel = await kernelWith(
      t,
      {
        services: {
          ns: netService({ network: 'private', isolation: 'namespace' }),
          nsock: netService({ network: 'none', listen: 'socket', isolation: 'namespace' }),
        },
      },
      [...plugins, namespaceRuntime],
    );
    // The socket in DATA_DIR is reachable from inside the sandbox, and pinned (owned by the tenant's uid).
    const socketInstance = await kernel.spawnInstance('nsock', 'a');
    assert.equal(socketInstance.state, 'running', socketInstance.lastError ?? '');
    assert.equal((await request(kernel, 'a.nsock.localhost', '/health')).body, 'ok');
    assert.match(socketInstance.handle?.address.pinnedPath ?? '', /^\/proc\/self\/fd\/\d+$/);
    const instance = await kernel.spawnInstance('ns', 'a');
    assert.equal(instance.state, 'running', instance.lastError ?? '');
    const who = await getJsonSoon<Whoami>(kernel, 'a.ns.localhost', '/whoami');
    assert.deepEqual(who.interfaces.eth0, [FIRST.guest]);
    const toLoopback = await getJsonSoon<Connect>(kernel, 'a.ns.localhost', `/connect?host=127.0.0.1&port=${loopback.port}`);
    assert.equal(toLoopback.ok, false);
    assert.equal(await instance.handle?.ownsAddress?.(), true);
  });
});
