// The management API on a Unix socket in the data dir (issue 18): 0600, preferred by `ten`, removed at close and
// replaced when stale; and `settings.api.tcp: false` takes /api off the TCP listener whatever the Host, so a
// tenant (which can reach 127.0.0.1 but not a root-only socket) cannot reach the API at all.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, test, type TestContext } from 'node:test';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import { ECHO_APP, freePort, request, ROOT, waitFor, type Reply } from '../helpers.ts';

const TEN = path.join(ROOT, 'bin', 'ten.mjs');

// Folders are removed once the file's tests are done, after every test's own after-hooks have stopped the kernels
// and servers writing into them: a removal hook added first would run first, and one that throws skips the stops.
const tempDirs: string[] = [];
after(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tenement-sock-'));
  chmodSync(dir, 0o755);
  tempDirs.push(dir);
  return dir;
}

/** One request on the Unix socket `file`. */
function socketCall(file: string, method: string, url: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: file, method, path: url, headers, agent: false, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`request on ${file} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
const adminToken = (dataDir: string): string => readFileSync(path.join(dataDir, 'admin.token'), 'utf8').trim();

async function socketKernel(t: TestContext, dataDir: string, api?: { tcp?: boolean; socket?: boolean | string }): Promise<TestKernel> {
  const kernel = await createTestKernel({ plugins: [authBearer], config: { settings: { dataDir, ...(api ? { api } : {}) } } });
  t.after(() => kernel.close());
  return kernel;
}

test('the API socket is 0600 in the data dir, serves /health and /api (with the token) without Host routing, and is removed at close', { timeout: 60_000 }, async (t) => {
  const dataDir = path.join(tempDir(), 'data');
  const kernel = await socketKernel(t, dataDir);
  const file = path.join(dataDir, 'api.sock');
  assert.equal(kernel.server.apiSocket.path, file);
  assert.ok(lstatSync(file).isSocket());
  assert.equal(statSync(file).mode & 0o777, 0o600);
  assert.equal(statSync(file).uid, process.getuid?.());

  assert.equal((await socketCall(file, 'GET', '/health')).status, 200);
  const anonymous = await socketCall(file, 'GET', '/api/tokens');
  assert.equal(anonymous.status, 401, 'the socket still wants the token');
  const listed = await socketCall(file, 'GET', '/api/tokens', { ...bearer(adminToken(dataDir)), host: 'alice.web.localhost' });
  assert.equal(listed.status, 200, listed.body);
  assert.equal((JSON.parse(listed.body) as { tokens: unknown[] }).tokens.length, 1);

  await kernel.close();
  assert.equal(existsSync(file), false, 'the socket is removed at close');
});

test('a stale socket left by a killed server is replaced at start; a live one refuses a second server with TNM_ERR_SERVER_LISTEN', { timeout: 60_000 }, async (t) => {
  const dataDir = path.join(tempDir(), 'data');
  const file = path.join(dataDir, 'api.sock');
  // A server killed with SIGKILL leaves its socket file behind, with nobody listening.
  const crashed = await new Promise<number | null>((resolve) => {
    const child = spawn(process.execPath, ['-e', `require('fs').mkdirSync(${JSON.stringify(dataDir)}, { recursive: true });
      require('net').createServer().listen(${JSON.stringify(file)}, () => process.kill(process.pid, 'SIGKILL'));`]);
    child.on('exit', (code) => resolve(code));
  });
  assert.equal(crashed, null, 'killed');
  assert.ok(lstatSync(file).isSocket(), 'the stale socket is there');

  const kernel = await socketKernel(t, dataDir);
  assert.equal((await socketCall(file, 'GET', '/api/tokens', bearer(adminToken(dataDir)))).status, 200, 'the new server answers on it');

  const second = await createTestKernel({ plugins: [authBearer], config: { settings: { dataDir } }, start: false });
  t.after(() => second.close());
  await assert.rejects(second.start(), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'TNM_ERR_SERVER_LISTEN');
    assert.match(error.message, /another server answers on .*api\.sock/);
    return true;
  });
  assert.equal((await socketCall(file, 'GET', '/health')).status, 200, 'the first server keeps its socket');
  await kernel.close();
});

test('settings.api.tcp false: /api on TCP answers a coded 404 whatever the Host or escaping, /health still answers, the socket serves the API', { timeout: 60_000 }, async (t) => {
  const dataDir = path.join(tempDir(), 'data');
  const kernel = await socketKernel(t, dataDir, { tcp: false });
  const admin = bearer(adminToken(dataDir));
  for (const host of ['localhost', '127.0.0.1', 'unknown.example.org', '[::1]']) {
    for (const url of ['/api/tokens', '/api/openapi.json', '/api', '/%61pi/tokens', '/api/tokens?x=1']) {
      const reply = await request(kernel, host, url, { headers: admin });
      assert.equal(reply.status, 404, `${host}${url}: ${reply.body}`);
      assert.equal(JSON.parse(reply.body).error.code, 'TNM_ERR_NOT_FOUND');
    }
  }
  assert.match(JSON.parse((await request(kernel, 'localhost', '/api/tokens', { headers: admin })).body).error.message, /Unix socket only/);
  assert.equal((await request(kernel, 'localhost', '/health')).status, 200, '/health stays on TCP');
  const viaSocket = await socketCall(path.join(dataDir, 'api.sock'), 'GET', '/api/tokens', admin);
  assert.equal(viaSocket.status, 200, viaSocket.body);
});

test('settings.api.tcp false without a socket is refused by the config schema', async () => {
  await assert.rejects(createTestKernel({ plugins: [], config: { settings: { api: { tcp: false, socket: false } } } }), /served nowhere/);
});

function ten(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('TENEMENT_')) env[key] = value;
  return new Promise((resolve) => {
    execFile(process.execPath, [TEN, ...args], { cwd, env, timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

test('ten ps talks over the socket with the config, also with settings.api.tcp false; --server forces TCP, which then answers 404', { timeout: 120_000 }, async (t) => {
  const dir = tempDir();
  const dataDir = path.join(dir, 'data');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  writeFileSync(
    path.join(dir, 'tenement.config.json'),
    JSON.stringify({
      settings: { port, dataDir, api: { tcp: false } },
      services: { web: { command: `node ${ECHO_APP}`, health: '/health', idleTimeout: false } },
      instances: { web: ['alice'] },
    }),
  );
  let log = '';
  const server: ChildProcess = spawn(process.execPath, [TEN, 'serve', '--config', path.join(dir, 'tenement.config.json')], {
    cwd: dir,
    env: { ...process.env, TENEMENT_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  server.stderr!.on('data', (chunk: Buffer) => (log = (log + chunk.toString('utf8')).slice(-10_000)));
  t.after(async () => {
    if (server.exitCode !== null || server.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
    server.kill('SIGTERM');
    const timer = setTimeout(() => server.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  });
  await waitFor(
    async () => {
      if (server.exitCode !== null) throw new Error(`ten serve exited ${server.exitCode}: ${log}`);
      return request(url, 'alice.web.localhost', '/health', { timeoutMs: 2_000 }).then(
        (reply) => reply.status === 200,
        () => false,
      );
    },
    'alice to answer through ten serve',
    60_000,
  );

  const ps = await ten(['ps'], dir);
  assert.equal(ps.code, 0, ps.stderr);
  assert.match(ps.stdout, /^web:alice +running /m);

  const tcp = await ten(['ps', '--server', url], dir);
  assert.equal(tcp.code, 1, tcp.stdout);
  assert.match(tcp.stderr, /TNM_ERR_NOT_FOUND.*Unix socket only/);
});

test('ten falls back to TCP when the socket in the data dir is stale (left by a crash), and says where it could not connect otherwise', { timeout: 120_000 }, async (t) => {
  const dir = tempDir();
  const dataDir = path.join(dir, 'data');
  // The server serves its socket elsewhere; a crashed run left api.sock, with nobody behind it.
  const kernel = await socketKernel(t, dataDir, { socket: 'served.sock' });
  const stale = path.join(dataDir, 'api.sock');
  await new Promise<void>((resolve) => {
    spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => process.kill(process.pid, 'SIGKILL'))`]).on('exit', () => resolve());
  });
  assert.ok(lstatSync(stale).isSocket());
  const port = new URL(kernel.url).port;
  writeFileSync(path.join(dir, 'tenement.config.json'), JSON.stringify({ settings: { port: Number(port), dataDir } }));

  const listed = await ten(['token', 'list', '--json'], dir);
  assert.equal(listed.code, 0, listed.stderr);
  assert.equal((JSON.parse(listed.stdout) as { tokens: unknown[] }).tokens.length, 1, 'answered over TCP with the admin token from the data dir');

  // With the API off TCP there is nothing to fall back to: the socket's own failure is the message.
  writeFileSync(path.join(dir, 'tenement.config.json'), JSON.stringify({ settings: { port: Number(port), dataDir, api: { tcp: false } } }));
  const refused = await ten(['token', 'list'], dir);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /cannot reach the server at unix:.*api\.sock: is `ten serve` running\?/);
});
