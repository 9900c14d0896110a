// docs/operations.md's nginx block, run as written (only the certificate paths and ports made local) in front of
// a real Tenement: TLS terminated by nginx for *.notes.example.com, the Host header reaching the right tenant,
// X-Forwarded-Proto https, a WebSocket through both proxies, and port 80 redirecting to https.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import WebSocket from 'ws';
import { echoService, freePort, onPath, ROOT, trackedKernel, waitFor } from '../helpers.ts';
import { tempDir } from '../ten-cli.ts';

/** The first ```nginx block of docs/operations.md. */
function documentedNginx(): string {
  const doc = readFileSync(path.join(ROOT, 'docs', 'operations.md'), 'utf8');
  const match = /```nginx\n([\s\S]*?)```/.exec(doc);
  assert.ok(match, 'docs/operations.md has an nginx block');
  return match[1]!;
}

function get(port: number, host: string, urlPath: string, tls: boolean): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const options = { host: '127.0.0.1', port, path: urlPath, headers: { host }, agent: false as const, timeout: 30_000 };
    const req = tls ? https.request({ ...options, servername: host, rejectUnauthorized: false }) : http.request(options);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

test('the nginx config of docs/operations.md terminates TLS for tenants, keeps Host and passes WebSockets', { timeout: 180_000 }, async (t) => {
  if (!onPath('nginx') || !onPath('openssl')) return t.skip('nginx or openssl is not installed (apt-get install nginx-light openssl)');
  const dir = tempDir('tenement-nginx-');
  const { kernel } = await trackedKernel(t, { notes: echoService({ idleTimeout: false }) }, { settings: { domain: 'example.com' } });
  await kernel.spawnInstance('notes', 'alice');
  await kernel.spawnInstance('notes', 'bob');

  const cert = path.join(dir, 'fullchain.pem');
  const key = path.join(dir, 'privkey.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=example.com', '-keyout', key, '-out', cert,
    '-addext', 'subjectAltName=DNS:example.com,DNS:*.example.com,DNS:*.notes.example.com',
  ], { stdio: 'ignore' });
  const [tlsPort, httpPort] = [await freePort(), await freePort()];
  const upstreamPort = new URL(kernel.url).port;
  const block = documentedNginx()
    .replace('listen 443 ssl;', `listen 127.0.0.1:${tlsPort} ssl;`)
    .replace('listen 80;', `listen 127.0.0.1:${httpPort};`)
    .replace('/etc/letsencrypt/live/example.com/fullchain.pem', cert)
    .replace('/etc/letsencrypt/live/example.com/privkey.pem', key)
    .replace('server 127.0.0.1:8080;', `server 127.0.0.1:${upstreamPort};`);
  for (const port of [tlsPort, httpPort]) assert.ok(block.includes(`127.0.0.1:${port}`), 'the documented listen lines are where the test expects them');
  const temp = path.join(dir, 'temp');
  mkdirSync(temp);
  chmodSync(temp, 0o777);
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;\nevents { worker_connections 256; }\nhttp {\n` +
      `access_log off;\nclient_body_temp_path ${temp}/body;\nproxy_temp_path ${temp}/proxy;\nfastcgi_temp_path ${temp}/fastcgi;\nuwsgi_temp_path ${temp}/uwsgi;\nscgi_temp_path ${temp}/scgi;\n` +
      `${block}\n}\n`,
  );
  const nginx = spawn('nginx', ['-p', dir, '-c', conf, '-e', path.join(dir, 'error.log')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let nginxLog = '';
  nginx.stderr!.on('data', (c: Buffer) => (nginxLog += c.toString('utf8')));
  t.after(async () => {
    if (nginx.exitCode !== null) return;
    const exited = new Promise((resolve) => nginx.once('exit', resolve));
    nginx.kill('SIGQUIT');
    const timer = setTimeout(() => nginx.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  });
  await waitFor(
    () => {
      if (nginx.exitCode !== null) throw new Error(`nginx exited ${nginx.exitCode}: ${nginxLog}`);
      return new Promise<boolean>((resolve) => {
        const socket = net.connect(tlsPort, '127.0.0.1', () => resolve(socket.end() !== undefined)).on('error', () => resolve(false));
      });
    },
    'nginx to listen',
    30_000,
  );

  // Host decides the tenant: alice and bob are two processes.
  const alice = await get(tlsPort, 'alice.notes.example.com', '/pid', true);
  const bob = await get(tlsPort, 'bob.notes.example.com', '/pid', true);
  assert.equal(alice.status, 200, alice.body);
  assert.equal(bob.status, 200, bob.body);
  assert.notEqual(alice.body, bob.body);
  assert.equal(alice.body, String(kernel.instances.get('notes', 'alice')!.handle!.pid));
  const echo = await get(tlsPort, 'alice.notes.example.com', '/echo', true);
  const seen = (JSON.parse(echo.body) as { headers: Record<string, string> }).headers;
  assert.equal(seen.host, 'alice.notes.example.com', 'Host reaches the app unchanged');
  assert.equal(seen['x-forwarded-proto'], 'https');
  assert.match(seen['x-forwarded-for'] ?? '', /127\.0\.0\.1/);

  const redirect = await get(httpPort, 'alice.notes.example.com', '/notes?x=1', false);
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.location, 'https://alice.notes.example.com/notes?x=1');

  const ws = new WebSocket(`wss://127.0.0.1:${tlsPort}/`, { headers: { host: 'alice.notes.example.com' }, rejectUnauthorized: false, perMessageDeflate: false });
  t.after(() => ws.terminate());
  // Added after every stop: after-hooks run in the order added, nginx writes into the folder, and a removal that
  // throws would skip the hooks after it.
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`the upgrade through nginx answered ${res.statusCode}`)));
  });
  const reply = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
  ws.send('through two proxies');
  assert.equal(await reply, 'echo:through two proxies');
  ws.close();
});
