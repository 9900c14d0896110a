// The management app (Fastify) is made on the first request it answers (core/management-loader.ts): an idle
// `ten serve` has not loaded Fastify, the first management requests (several at once, on TCP and on the API socket)
// wait for it and get the same answers as ever. A route declared twice is refused in the setup that declares it,
// as Fastify refused it when it was made at start-up.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ErrorCodes } from '../../core/errors.ts';
import { lazyManagement } from '../../core/management-loader.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import { definePlugin } from '../../sdk/index.ts';
import { ROOT, freePort, request, servePlugins, waitFor } from '../helpers.ts';
import { cleanEnv, instancePids, stopChild, tempDir } from '../ten-cli.ts';
import { TRACE_MODULES_ARGS, loadedModuleLines } from '../module-trace.ts';

const TEN = path.join(ROOT, 'bin', 'ten.mjs');

const FASTIFY = /\/node_modules\/fastify\//;

/** A GET on the management API's Unix socket. */
function socketGet(socketPath: string, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: urlPath, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath} on the API socket timed out`)));
    req.on('error', reject);
    req.end();
  });
}

test('ten serve loads Fastify on the first management request, not at start-up; the first requests all get their answers', { timeout: 180_000 }, async (t) => {
  const dir = tempDir('tenement-lazy-mgmt-');
  const dataDir = path.join(dir, 'data');
  const config = path.join(dir, 'tenement.config.json');
  const port = await freePort();
  writeFileSync(config, JSON.stringify({ settings: { domain: 'localhost', port, listen: '127.0.0.1', dataDir }, services: { notes: { command: 'node app.mjs', cwd: path.join(ROOT, 'examples', 'notes') } } }));
  let stderr = '';
  const serve: ChildProcess = spawn(process.execPath, [...TRACE_MODULES_ARGS, TEN, 'serve', '--config', config], {
    cwd: dir,
    env: cleanEnv({ TENEMENT_LOG_LEVEL: 'warn', XDG_CONFIG_HOME: path.join(dir, 'xdg') }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  serve.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
  });
  t.after(async () => {
    await stopChild(serve);
    for (const pid of instancePids(dataDir)) process.kill(pid, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const loaded = (): string[] => loadedModuleLines(stderr);

  await waitFor(() => {
    if (serve.exitCode !== null) throw new Error(`ten serve exited ${serve.exitCode}:\n${stderr.slice(-4000)}`);
    return stderr.includes('tenement serving');
  }, 'ten serve to print its address', 120_000);
  // Tenant traffic does not need it either: an unknown tenant is answered by the proxy's router.
  const tenant = await request(`http://127.0.0.1:${port}`, 'nobody.notes.localhost', '/');
  assert.equal(tenant.status, 404, tenant.body);
  assert.deepEqual(loaded().filter((line) => FASTIFY.test(line)), [], 'Fastify loaded before any management request');

  // The first management requests arrive together, on TCP and on the socket: each waits for the app, none is lost.
  const socketPath = path.join(dataDir, 'api.sock');
  const [health, openapi, missing, viaSocket] = await Promise.all([
    request(`http://127.0.0.1:${port}`, 'localhost', '/health'),
    request(`http://127.0.0.1:${port}`, 'localhost', '/api/openapi.json'),
    request(`http://127.0.0.1:${port}`, 'localhost', '/no/such/endpoint'),
    socketGet(socketPath, '/health'),
  ]);
  assert.equal(health.status, 200, health.body);
  assert.equal((JSON.parse(health.body) as { status: string }).status, 'ok');
  assert.equal(openapi.status, 401, 'the API still wants a token');
  assert.equal((JSON.parse(openapi.body) as { error: { code: string } }).error.code, ErrorCodes.UNAUTHORIZED);
  assert.equal(missing.status, 404);
  assert.equal((JSON.parse(missing.body) as { error: { code: string } }).error.code, ErrorCodes.NOT_FOUND);
  assert.equal(viaSocket.status, 200, viaSocket.body);
  assert.ok(loaded().some((line) => FASTIFY.test(line)), 'Fastify loaded for the management requests');
});

test('a management route declared twice is refused in the setup of the plugin that declares it', { timeout: 60_000 }, async () => {
  const route = { method: 'GET', url: '/api/twice/:id', summary: 'twice', access: 'public', handler: () => ({}) } as const;
  const first = definePlugin({ name: 'first-route', version: '1.0.0', kernel: '^1', setup: (ctx) => ctx.api.route(route) });
  // The same path with another parameter name is the same route to Fastify's router.
  const second = definePlugin({ name: 'second-route', version: '1.0.0', kernel: '^1', setup: (ctx) => ctx.api.route({ ...route, url: '/api/twice/:name' }) });
  await assert.rejects(createTestKernel({ plugins: [...servePlugins, first, second] }), (error: unknown) => {
    assert.match(String(error), /second-route/);
    assert.match(String(error), /already has a route GET \/api\/twice\/:name/);
    return true;
  });
  // Its own /health is the management app's.
  const health = definePlugin({ name: 'health-route', version: '1.0.0', kernel: '^1', setup: (ctx) => ctx.api.route({ ...route, url: '/health' }) });
  await assert.rejects(createTestKernel({ plugins: [...servePlugins, health] }), /already has a route GET \/health/);
});

test('a management app that could not be made is made again on the next request, not kept failed', { timeout: 60_000 }, async (t) => {
  const kernel = await createTestKernel({ plugins: servePlugins });
  const server = http.createServer();
  let attempts = 0;
  const management = lazyManagement(kernel, server, () => {
    attempts++;
    if (attempts === 1) throw new Error('the first attempt fails (as a plugin timing out on a loaded host would)');
  });
  server.on('request', (req, res) => management.handle(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(async () => {
    await management.close();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await kernel.close();
  });
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  assert.equal((await request(url, '127.0.0.1', '/health')).status, 500, 'the failed attempt answers 500');
  assert.equal((await request(url, '127.0.0.1', '/health')).status, 200, 'the next request makes the app again');
  assert.equal(attempts, 2);
});
