// settings.proxy.accept 'spill' (core/dataplane/workers/spill.ts): proxy workers start parked (forked, not holding
// the listening socket) and accept only once spilled; a parked worker keeps serving the connections it holds while
// new ones go to the processes still accepting. The load-driven decision is unit-tested (test/unit/proxy-spill);
// here it is steered by hand, so what the host's load does cannot change the outcome.
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import http from 'node:http';
import { test } from 'node:test';
import { resolveConfig } from '../../core/config/loader.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import { echoService, request, servePlugins, waitFor } from '../helpers.ts';

/** The inode of the socket listening on 127.0.0.1:`port` (one line: spill never binds SO_REUSEPORT sockets). */
function listeningInodes(port: number): string[] {
  const hex = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/tcp', 'latin1')
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[1] === hex && fields[3] === '0A')
    .map((fields) => fields[9]!);
}

function holds(pid: number, inode: string): boolean {
  const wanted = `socket:[${inode}]`;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === wanted) return true;
    } catch {
      // closed meanwhile
    }
  }
  return false;
}

/** One request on a kept-alive connection of `agent` (maxSockets 1: always the same connection). */
function keptAlive(url: string, agent: http.Agent): Promise<{ status: number; body: string; reused: boolean }> {
  const base = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.get({ host: base.hostname, port: base.port, path: '/pid', headers: { host: 'a.echo.localhost' }, agent, timeout: 30_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, reused: req.reusedSocket }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

test('proxy.accept spill: a parked worker holds no listening socket; spilled, it accepts and takes its share of idle connections; parked again, it keeps them', { timeout: 120_000 }, async (t) => {
  const kernel = await createTestKernel({
    plugins: servePlugins,
    config: { settings: { proxy: { workers: 2, accept: 'spill' } }, services: { echo: echoService() } },
  });
  const agents: http.Agent[] = [];
  // Closed with the clients' kept-alive connections still open (some moved to the worker): close must not wait on them.
  t.after(() => kernel.close().finally(() => agents.forEach((agent) => agent.destroy())));
  const port = Number(new URL(kernel.url).port);
  const [workerPid] = kernel.server.proxyWorkers().pids;
  assert.ok(workerPid !== undefined);
  const inodes = listeningInodes(port);
  assert.equal(inodes.length, 1, 'one listening socket, whatever the Node version (no SO_REUSEPORT under spill)');
  const inode = inodes[0]!;
  assert.ok(holds(process.pid, inode), "the kernel's process accepts");

  // By hand from here on; parked, whatever the load did since start-up.
  kernel.server.steerProxyWorkers('park');
  await waitFor(() => !holds(workerPid, inode), 'the worker to let go of the listening socket');
  assert.equal(kernel.server.proxyWorkers().accepting, 0);
  const instance = await kernel.spawnInstance('echo', 'a');
  for (let i = 0; i < 10; i++) assert.equal((await request(kernel, 'a.echo.localhost', '/pid')).status, 200);
  // Kept-alive connections opened while the worker is parked: all the kernel's.
  for (let i = 0; i < 8; i++) {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    const reply = await keptAlive(kernel.url, agent);
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.body, String(instance.handle!.pid));
  }
  await kernel.server.proxyWorkersSynced();
  assert.equal(kernel.server.proxyWorkers().connections, 0, 'a parked worker is given no connection');

  assert.equal(kernel.server.steerProxyWorkers('spill'), true);
  assert.equal(kernel.server.steerProxyWorkers('spill'), false, 'no parked worker is left to spill');
  assert.equal(kernel.server.proxyWorkers().accepting, 1);
  await waitFor(() => holds(workerPid, inode), 'the spilled worker to hold the listening socket');
  assert.equal(listeningInodes(port).length, 1, 'still the one accept queue');
  // Its share of the kernel's idle connections moved with the spill (half of the 8: two processes accept).
  await kernel.server.proxyWorkersSynced();
  const held = kernel.server.proxyWorkers().connections;
  assert.equal(held, 4, 'the spilled worker took its share of the idle connections');
  for (const agent of agents) {
    const reply = await keptAlive(kernel.url, agent);
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.reused, true, 'a moved connection goes on serving');
  }

  assert.equal(kernel.server.steerProxyWorkers('park'), true);
  await waitFor(() => !holds(workerPid, inode), 'the worker to be parked again');
  // Every kept-alive connection is still served, the worker's ones by the worker.
  for (const agent of agents) {
    const reply = await keptAlive(kernel.url, agent);
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.reused, true, 'the same connection');
  }
  await kernel.server.proxyWorkersSynced();
  assert.equal(kernel.server.proxyWorkers().connections, held, 'parking closed none of its connections');
  // New connections reach the kernel's process, which still accepts.
  for (let i = 0; i < 10; i++) assert.equal((await request(kernel, 'a.echo.localhost', '/pid')).status, 200);
  await kernel.server.proxyWorkersSynced();
  assert.equal(kernel.server.proxyWorkers().connections, held);
});

test('proxy.accept takes spread or spill only, spill when not given', async () => {
  const source = { path: null, dir: process.cwd() };
  assert.equal(resolveConfig({ services: {} }, source).settings.proxy.accept, 'spill');
  assert.equal(resolveConfig({ settings: { proxy: { workers: 2 } }, services: {} }, source).settings.proxy.accept, 'spill');
  assert.equal(resolveConfig({ settings: { proxy: { workers: 2, accept: 'spread' } }, services: {} }, source).settings.proxy.accept, 'spread');
  await assert.rejects(
    createTestKernel({ plugins: servePlugins, config: { settings: { proxy: { workers: 2, accept: 'round-robin' as 'spill' } }, services: { echo: echoService() } } }),
    /accept/,
  );
});
