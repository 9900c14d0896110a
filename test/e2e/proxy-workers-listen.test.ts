// How proxy workers listen (core/dataplane/workers/listen.ts): on Node >= 22.12 each process binds a socket of its
// own to the proxy's address with SO_REUSEPORT and the OS spreads connections over them; on Node 20 they share the
// kernel's one listening socket. The e2e test counts the listening sockets the OS has for the port (/proc/net/tcp)
// and checks that a worker serves requests either way; CI runs it on Node 20 and on Node 24.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import { reusePortSupported } from '../../core/dataplane/workers/listen.ts';
import { echoService, request, servePlugins } from '../helpers.ts';

test('reusePort is chosen from Node 22.12 and 23.1 on, on Linux', () => {
  for (const [version, expected] of [
    ['20.20.2', false],
    ['22.11.0', false],
    ['22.12.0', true],
    ['23.0.0', false],
    ['23.1.0', true],
    ['24.21.0', true],
    ['100.0.0', true],
  ] as const) {
    assert.equal(reusePortSupported(version, 'linux'), expected, version);
  }
  assert.equal(reusePortSupported('24.21.0', 'win32'), false);
  assert.equal(reusePortSupported('24.21.0', 'darwin'), false);
  assert.equal(reusePortSupported('garbage', 'linux'), false);
});

/** Sockets in LISTEN state on 127.0.0.1:`port` (each SO_REUSEPORT socket is one line; a shared one is one line). */
function listeningSockets(port: number): number {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'latin1')
    .split('\n')
    .filter((line) => {
      const fields = line.trim().split(/\s+/);
      return fields[1] === hex && fields[3] === '0A';
    }).length;
}

test(`proxy workers on Node ${process.versions.node}: ${reusePortSupported() ? 'a socket of their own each (SO_REUSEPORT)' : "the kernel's shared socket"}, and they serve`, { timeout: 120_000 }, async () => {
  const kernel = await createTestKernel({ plugins: servePlugins, config: { settings: { proxy: { workers: 3, accept: 'spread' } }, services: { echo: echoService() } } });
  const port = Number(new URL(kernel.url).port);
  try {
    const workers = kernel.server.proxyWorkers();
    assert.equal(workers.pids.length, 2);
    assert.equal(listeningSockets(port), reusePortSupported() ? 3 : 1, 'listening sockets on the proxy port');
    const instance = await kernel.spawnInstance('echo', 'a');
    // Fresh connections until a worker served some (the OS picks the socket; bounded).
    for (let i = 0; i < 300 && kernel.server.proxyWorkers().requests < 5; i++) {
      const reply = await request(kernel, 'a.echo.localhost', '/pid');
      assert.equal(reply.status, 200, reply.body);
      assert.equal(reply.body, String(instance.handle!.pid));
      if (i % 20 === 19) await new Promise((resolve) => setTimeout(resolve, 120));
    }
    assert.ok(kernel.server.proxyWorkers().requests >= 5, `workers served ${kernel.server.proxyWorkers().requests}`);
  } finally {
    await kernel.close();
  }
  // Closed: no socket of any process is left on the port.
  assert.equal(listeningSockets(port), 0);
});
