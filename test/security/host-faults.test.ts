// `ten serve` survives what a tenant (or a broken plugin) can make go wrong on the host: the fd limit reached
// (EMFILE on spawn, on the port probe, on accept), a spawn failing with a system error, plugin taps that throw.
// Each runs a real `ten serve` child and checks it is still serving afterwards.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { ECHO_APP, ROOT, onPath, request, sleep, waitFor, type Reply } from '../helpers.ts';
import { adminToken, freePort, projectDir, startServe, writeJsonConfig, type ServeChild } from './serve-child.ts';

/** One request on a kept-alive connection of `agent` (already accepted, so it needs no new descriptor). */
function viaAgent(agent: http.Agent, url: string, host: string, urlPath: string, timeoutMs = 30_000): Promise<Reply> {
  const base = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: base.hostname, port: base.port, path: urlPath, headers: { host }, agent, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${host}${urlPath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

function softFdLimit(pid: number): number {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  return Number(line?.split(/\s{2,}/)[1]);
}

/**
 * A soft limit that leaves exactly `free` descriptors: a new descriptor takes the lowest free number, and the
 * limit bounds that number, so the limit is the (free+1)-th unused number, holes below it included.
 */
function limitLeaving(pid: number, free: number): number {
  const open = new Set(readdirSync(`/proc/${pid}/fd`).map(Number));
  let unused = 0;
  for (let fd = 0; ; fd++) {
    if (open.has(fd)) continue;
    if (unused === free) return fd;
    unused += 1;
  }
}

function setSoftFdLimit(pid: number, soft: number): void {
  execFileSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:`]);
}

function errorCode(reply: Reply): string | null {
  try {
    return (JSON.parse(reply.body) as { error?: { code?: string } }).error?.code ?? null;
  } catch {
    return null;
  }
}

async function instanceState(serve: ServeChild, key: string): Promise<string | undefined> {
  const [service, id] = key.split(':');
  const reply = await request(serve.url, 'localhost', `/api/instances/${service}/${id}`, { headers: { authorization: `Bearer ${adminToken(serve.dataDir)}` } });
  return reply.status === 200 ? (JSON.parse(reply.body) as { state?: string }).state : undefined;
}

async function serveWith(t: TestContext, prefix: string, config: (port: number) => unknown): Promise<ServeChild> {
  const dir = projectDir(prefix);
  const port = await freePort();
  const serve = await startServe(dir, writeJsonConfig(dir, config(port)), port);
  t.after(() => serve.stop());
  return serve;
}

test('at the fd limit: spawns and port probes fail with EMFILE as coded errors, the server stays up and recovers', { timeout: 180_000, skip: onPath('prlimit') ? false : 'needs prlimit (util-linux)' }, async (t) => {
  const serve = await serveWith(t, 'tenement-emfile-', (port) => ({
    settings: { port, dataDir: './data', domain: 'localhost', healthInterval: '1h' },
    services: {
      echo: { command: `node ${ECHO_APP}`, health: '/health', idleTimeout: false },
      sleepy: {
        command: `node ${ECHO_APP}`,
        health: '/health',
        idleTimeout: '300ms',
        startupTimeout: '3s',
        backoff: { base: '200ms', max: '1s' },
        maxRestarts: 1000,
        restartWindow: '1m',
      },
    },
    instances: { echo: ['a'], sleepy: ['b'] },
  }));
  await waitFor(async () => (await instanceState(serve, 'sleepy:b')) === 'hibernated', 'sleepy:b to hibernate', 30_000);
  const original = softFdLimit(serve.pid);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => agent.destroy());
  t.after(() => {
    if (!serve.exited()) setSoftFdLimit(serve.pid, original);
  });
  assert.equal((await viaAgent(agent, serve.url, 'a.echo.localhost', '/pid')).status, 200);
  await sleep(300);

  // A few descriptors free: enough for the port probe, not for the pipes of a spawn.
  setSoftFdLimit(serve.pid, limitLeaving(serve.pid, 3));
  const starved = await viaAgent(agent, serve.url, 'b.sleepy.localhost', '/pid');
  assert.equal(starved.status, 503, starved.body);
  assert.match(errorCode(starved) ?? '', /^TNM_ERR_/);
  assert.ok(!serve.exited(), `ten serve is up after a spawn at the fd limit:\n${serve.output().slice(-3000)}`);
  await waitFor(() => /cannot start sleepy:b: spawn [^"\n]*EMFILE/.test(serve.output()), 'the log to name EMFILE for the spawn', 10_000);
  // Contained where it happened (a coded start failure), not by the process-wide last resort.
  assert.doesNotMatch(serve.output(), /internal error contained \(uncaught/);

  // None free: the port probe itself fails, and says why instead of "no free port".
  setSoftFdLimit(serve.pid, limitLeaving(serve.pid, 0));
  const probe = await viaAgent(agent, serve.url, 'b.sleepy.localhost', '/pid');
  assert.equal(probe.status, 503, probe.body);
  // A running tenant: served on a pooled upstream connection, or a coded 5xx when a new one cannot be opened.
  const running = await viaAgent(agent, serve.url, 'a.echo.localhost', '/pid');
  assert.ok(running.status === 200 || /^TNM_ERR_/.test(errorCode(running) ?? ''), `${running.status} ${running.body}`);
  // A new connection cannot even be accepted: it is lost, the server is not.
  await request(serve.url, 'a.echo.localhost', '/pid', { timeoutMs: 3_000 }).catch(() => undefined);
  assert.ok(!serve.exited(), `ten serve is up after accepts and probes at the fd limit:\n${serve.output().slice(-3000)}`);
  await waitFor(() => serve.output().includes('cannot probe a port for the instance: EMFILE'), 'the log to name EMFILE for the port probe', 10_000).catch((error: unknown) => {
    throw new Error(`${String(error)}\n${serve.output().slice(-4000)}`);
  });
  assert.doesNotMatch(serve.output(), /no free port left/);

  // Descriptors released: the restart policy brings the instance up and requests are served again.
  agent.destroy();
  setSoftFdLimit(serve.pid, original);
  await waitFor(async () => (await request(serve.url, 'b.sleepy.localhost', '/pid').catch(() => null))?.status === 200, 'sleepy:b to serve again', 60_000);
  assert.equal((await request(serve.url, 'a.echo.localhost', '/pid')).status, 200);
  assert.doesNotMatch(serve.output(), /internal error contained/);
  assert.ok(!serve.exited());
});

test('a spawn failing with a system error (E2BIG) is a coded error under the restart policy; the server stays up', { timeout: 120_000 }, async (t) => {
  const serve = await serveWith(t, 'tenement-e2big-', (port) => ({
    settings: { port, dataDir: './data', domain: 'localhost', healthInterval: '1h' },
    services: {
      echo: { command: `node ${ECHO_APP}`, health: '/health', idleTimeout: false },
      // One environment string over the kernel's 128 KiB limit: execve fails with E2BIG, which Node throws
      // (rather than emits) from spawn(), like ENOMEM.
      huge: {
        command: `node ${ECHO_APP}`,
        health: '/health',
        idleTimeout: false,
        env: { BLOB: 'x'.repeat(200_000) },
        backoff: { base: '100ms', max: '200ms' },
        maxRestarts: 2,
        restartWindow: '1m',
      },
    },
    instances: { echo: ['a'], huge: ['x'] },
  }));
  await waitFor(async () => (await instanceState(serve, 'huge:x')) === 'failed', 'huge:x to fail after its restarts', 60_000);
  const reply = await request(serve.url, 'x.huge.localhost', '/');
  assert.equal(reply.status, 503);
  assert.equal(errorCode(reply), 'TNM_ERR_INSTANCE_FAILED');
  assert.match(reply.body, /cannot start huge:x: spawn (\S+ )?E2BIG/);
  // The restart policy ran: the first start and its two restarts each failed the same coded way.
  const attempts = serve.output().split('\n').filter((l) => l.includes('"instance":"huge:x"') && l.includes('start failed'));
  assert.equal(attempts.length, 3, attempts.join('\n'));
  assert.equal((await request(serve.url, 'a.echo.localhost', '/pid')).status, 200);
  assert.ok(!serve.exited());
});

const BAD_PLUGIN = (root: string): string => `
import { definePlugin } from '${path.join(root, 'sdk', 'index.ts')}';

const fail = (where: string): never => {
  throw new Error('boom in ' + where);
};

export default definePlugin({
  name: 'bad-plugin',
  version: '1.0.0',
  kernel: '^1',
  setup(ctx) {
    ctx.hooks.stateChange.tap(() => fail('stateChange'));
    ctx.hooks.stateChange.tap(async () => fail('stateChange (async)'));
    ctx.hooks.log.tap(() => fail('log'));
    ctx.hooks.log.tap(async () => fail('log (an async function in a sync hook)'));
    ctx.hooks.request.tap(() => fail('request'));
    ctx.hooks.request.tap(() => {
      // A promise of its own that nobody awaits: an unhandled rejection.
      void Promise.reject(new Error('boom unhandled'));
    });
    ctx.hooks.describe.tap(async () => fail('describe'));
    // Before the router, which would answer for any name under the domain.
    ctx.hooks.route.tap(async (info) => (info.hostname.startsWith('boom.') ? fail('route') : undefined), { stage: -10 });
  },
});
`;

test('plugin taps that throw, sync and async, in several hooks: the server stays up, each is counted and logged', { timeout: 120_000 }, async (t) => {
  const dir = projectDir('tenement-badplugin-');
  const port = await freePort();
  writeFileSync(path.join(dir, 'bad-plugin.ts'), BAD_PLUGIN(ROOT));
  const config = {
    settings: { port, dataDir: './data', domain: 'localhost', healthInterval: '1h' },
    services: { echo: { command: `node ${ECHO_APP}`, health: '/health', idleTimeout: false } },
    instances: { echo: ['a'] },
  };
  const configFile = path.join(dir, 'tenement.config.ts');
  writeFileSync(configFile, `import bad from './bad-plugin.ts';\nexport default { ...${JSON.stringify(config)}, plugins: [bad] };\n`);
  const serve = await startServe(dir, configFile, port);
  t.after(() => serve.stop());

  for (let i = 0; i < 5; i++) {
    const reply = await request(serve.url, 'a.echo.localhost', `/log?line=hello-${i}`);
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.body, 'logged');
  }
  const routed = await request(serve.url, 'boom.echo.localhost', '/');
  assert.equal(routed.status, 500);
  assert.equal(errorCode(routed), 'TNM_ERR_HOOK_FAILED');
  const view = await request(serve.url, 'localhost', '/api/instances/echo/a', { headers: { authorization: `Bearer ${adminToken(serve.dataDir)}` } });
  assert.equal(view.status, 200, view.body);
  assert.equal((await request(serve.url, 'a.echo.localhost', '/pid')).status, 200);
  assert.ok(!serve.exited(), `ten serve is up:\n${serve.output().slice(-3000)}`);

  const counts = new Map<string, number>();
  await waitFor(async () => {
    const metrics = await request(serve.url, 'localhost', '/metrics');
    counts.clear();
    for (const match of metrics.body.matchAll(/^tenement_internal_errors_total\{where="([^"]+)"\} (\d+)/gm)) counts.set(match[1]!, Number(match[2]));
    return ['hook:stateChange', 'hook:log', 'hook:request', 'hook:describe', 'hook:route', 'unhandledRejection'].every((w) => (counts.get(w) ?? 0) > 0);
  }, 'tenement_internal_errors_total for every failing hook', 20_000).catch((error: unknown) => {
    throw new Error(`${String(error)}; counted: ${JSON.stringify([...counts])}`);
  });
  // Ten log lines per second ran through the failing log taps: at least those were counted.
  assert.ok((counts.get('hook:log') ?? 0) >= 10, `log tap failures counted: ${counts.get('hook:log')}`);
  const output = serve.output();
  for (const hook of ['stateChange', 'log', 'request', 'describe', 'route']) {
    assert.match(output, new RegExp(`"plugin":"bad-plugin","hook":"${hook}"`), `the log names bad-plugin and ${hook}`);
  }
  assert.match(output, /boom unhandled/);
  assert.ok(!serve.exited());
});
