// The HAProxy edge (plugins/edge-haproxy, docs/edge.md), how haproxy is run: TLS with the certificates of certDir,
// `ten doctor`'s report, the settings a managed haproxy refuses, a killed haproxy started again, and attach mode
// programming an haproxy run by the operator.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import edgeHaproxy from '../../plugins/edge-haproxy/index.ts';
import { errorFiles, renderConfig, renderMap } from '../../plugins/edge-haproxy/render.ts';
import { RuntimeApi } from '../../plugins/edge-haproxy/runtime-api.ts';
import { alive, echoService, freePort, request, servePlugins, waitFor } from '../helpers.ts';
import { ten, tempDir } from '../ten-cli.ts';
import { haproxyMissing, startEdge, untilDirect } from './edge-haproxy-fixture.ts';

const skip = haproxyMissing();

test('TLS is terminated by haproxy with the certificates of certDir; the instance is told https', { skip, timeout: 120_000 }, async (t) => {
  const certDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-edge-certs-'));
  const key = path.join(certDir, 'key.tmp');
  const cert = path.join(certDir, 'cert.tmp');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=echo.localhost', '-addext', 'subjectAltName=DNS:*.echo.localhost,DNS:echo.localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  // HAProxy reads every file of the directory as a certificate: one PEM with the certificate and its key.
  const pem = readFileSync(cert, 'utf8') + readFileSync(key, 'utf8');
  rmSync(key);
  rmSync(cert);
  writeFileSync(path.join(certDir, 'echo.localhost.pem'), pem, { mode: 0o600 });
  const e = await startEdge(t, { echo: echoService({ idleTimeout: 0 }) }, { certDir });
  // Added after startEdge's stop: after-hooks run in the order added, and haproxy reads this folder.
  t.after(() => rmSync(certDir, { recursive: true, force: true }));
  await e.kernel.spawnInstance('echo', 'alice');
  await untilDirect(e, 'echo', 'alice', { probe: false });
  const port = Number(new URL(e.edge).port);
  const reply = await new Promise<{ status: number; body: string; peer: string }>((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, path: '/echo', servername: 'alice.echo.localhost', headers: { host: 'alice.echo.localhost' }, ca: pem, agent: false, timeout: 20_000 },
      (res) => {
        const peer = String((res.socket as import('node:tls').TLSSocket).getPeerCertificate().subject?.CN ?? '');
        let body = '';
        res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve({ status: res.statusCode ?? 0, body, peer }));
      },
    );
    req.on('error', reject).end();
  });
  assert.equal(reply.status, 200, reply.body);
  assert.equal(reply.peer, 'echo.localhost', 'the certificate from certDir');
  assert.equal((JSON.parse(reply.body) as { headers: Record<string, string> }).headers['x-forwarded-proto'], 'https');
});

test('ten doctor reports haproxy: its version when usable, the package to install when missing', { timeout: 120_000 }, async (t) => {
  const dir = tempDir('tenement-edge-doctor-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  type Report = { haproxy: { found: boolean; ok: boolean; version: string | null; reason: string | null } };
  const missing = await ten(['doctor', '--json', '--probe-only'], dir, { PATH: '/nonexistent' });
  assert.equal(missing.code, 0, missing.stderr);
  const gone = (JSON.parse(missing.stdout) as Report).haproxy;
  assert.equal(gone.found, false);
  assert.match(gone.reason ?? '', /apt-get install haproxy/);
  if (skip) return t.skip(skip);
  const human = await ten(['doctor', '--probe-only'], dir);
  assert.equal(human.code, 0, human.stderr);
  assert.match(human.stdout, /^haproxy +2\.\d+\S* usable/m);
});

test('managed haproxy refuses a built-in proxy on a public address: it is the activator and must stay on loopback', async () => {
  const port = await freePort();
  await assert.rejects(
    createTestKernel({
      plugins: [...servePlugins, edgeHaproxy],
      config: { settings: { listen: '0.0.0.0', edge: { kind: 'haproxy', listen: `127.0.0.1:${port}` } } as never, services: { echo: echoService() } },
    }),
    (error: Error) => /settings\.listen is '0\.0\.0\.0'.*must listen on loopback/.test(error.message),
  );
});

test('managed haproxy with no haproxy binary: the server refuses to start, naming the package', async () => {
  const port = await freePort();
  await assert.rejects(
    createTestKernel({
      plugins: [...servePlugins, edgeHaproxy],
      config: { settings: { listen: '127.0.0.1', edge: { kind: 'haproxy', listen: `127.0.0.1:${port}`, binary: '/nonexistent/haproxy' } } as never, services: { echo: echoService() } },
    }),
    (error: Error) => /haproxy not found \(apt-get install haproxy\)/.test(error.message),
  );
});

describe('HAProxy edge supervision', { skip, timeout: 120_000 }, () => {
  test('a killed haproxy is started again and programmed afresh; closing the server stops it', async (t) => {
    const e = await startEdge(t, { echo: echoService({ idleTimeout: 0 }) });
    await e.kernel.spawnInstance('echo', 'alice');
    await untilDirect(e, 'echo', 'alice');
    const pidFile = path.join(e.kernel.config.settings.dataDir, 'haproxy', 'haproxy.pid');
    const master = Number(readFileSync(pidFile, 'utf8').trim().split('\n')[0]);
    assert.ok(alive(master));
    process.kill(master, 'SIGKILL');
    await waitFor(async () => {
      try {
        return Number(readFileSync(pidFile, 'utf8').trim().split('\n')[0]) !== master;
      } catch {
        return false;
      }
    }, 'a new haproxy master', 20_000);
    await untilDirect(e, 'echo', 'alice');
    const reply = await request(e.edge, 'alice.echo.localhost', '/pid');
    assert.equal(reply.status, 200);
    const second = Number(readFileSync(pidFile, 'utf8').trim().split('\n')[0]);
    // The master killed with SIGKILL leaves its worker, which exits once it sees the master gone.
    await e.kernel.close();
    await waitFor(() => !alive(second), 'the haproxy master to stop with the server', 10_000);
  });
});

test('attach mode programs a running haproxy (its config written elsewhere) over the socket given', { skip, timeout: 120_000 }, async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-edge-attach-'));
  const socket = path.join(dir, 'admin.sock');
  const kernel = await createTestKernel({
    plugins: [...servePlugins, edgeHaproxy],
    config: { settings: { listen: '127.0.0.1', edge: { kind: 'haproxy', mode: 'attach', socket } } as never, services: { echo: echoService({ idleTimeout: 0 }) } },
  });
  t.after(() => kernel.close());
  const activator = { host: '127.0.0.1', port: Number(new URL(kernel.url).port) };
  const port = await freePort();
  // The operator's HAProxy, with the backends Tenement names: alice's server starts disabled (the activator serves).
  const services = new Map([['echo', [{ id: 'alice', weight: 1, target: null }]]]);
  const mapFile = path.join(dir, 'hosts.map');
  writeFileSync(mapFile, renderMap('localhost', services));
  const errorDir = path.join(dir, 'errors');
  mkdirSync(errorDir);
  for (const [name, text] of errorFiles()) writeFileSync(path.join(errorDir, name), text);
  writeFileSync(path.join(dir, 'haproxy.cfg'), renderConfig({ domain: 'localhost', listen: { host: '127.0.0.1', port }, activator, socket, mapFile, errorDir, serverTimeoutMs: 60_000, services }));
  const { spawn } = await import('node:child_process');
  const haproxy = spawn('haproxy', ['-W', '-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: 'ignore' });
  t.after(async () => {
    if (haproxy.exitCode !== null) return;
    const exited = new Promise((resolve) => haproxy.once('exit', resolve));
    haproxy.kill('SIGTERM');
    const kill = setTimeout(() => haproxy.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(kill);
  });
  // Added after the kernel's and haproxy's stops: after-hooks run in the order added, and both write into it.
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const alice = await kernel.spawnInstance('echo', 'alice');
  const api = new RuntimeApi(socket);
  await waitFor(
    async () => {
      try {
        return (await api.serverStats((b) => b === 'i.echo.alice')).some((s) => s.server === 'alice' && !s.maint && s.addr.endsWith(`:${alice.handle?.address.port}`));
      } catch {
        return false;
      }
    },
    'tenement to point the running haproxy at alice',
    20_000,
  );
  const reply = await request(`http://127.0.0.1:${port}`, 'alice.echo.localhost', '/pid');
  assert.equal(reply.status, 200);
  assert.equal(Number(reply.body), alice.handle?.pid);
  assert.ok(!existsSync(path.join(kernel.config.settings.dataDir, 'haproxy', 'haproxy.cfg')), 'attach mode writes no config of its own');
});
