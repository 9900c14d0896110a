// Names are data (issue 18, item 6): `__proto__`, `constructor`, `prototype`, `toString`, `hasOwnProperty` and
// `valueOf` fed through every API route, the Host header, the CLI and the config's keys. Before the fix a tenant
// token's `POST /api/instances/constructor/bob` answered 500, left a ghost instance whose config was
// Object.prototype.constructor, and the next request to it killed the server.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import { defaultPlugins } from '../../cli/default-plugins.ts';
import { serviceConfig } from '../../core/config/lookup.ts';
import { resolveConfig } from '../../core/config/loader.ts';
import type { ConfigInput } from '../../core/config/schema.ts';
import { TenementError } from '../../core/errors.ts';
import { definePlugin } from '../../sdk/index.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import { ECHO_APP, ROOT, echoService, request, waitFor } from '../helpers.ts';

const NAMES = ['__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'] as const;
/** The ones that are DNS labels as written (lowercased by a Host header, `toString` becomes one too). */
const LABELS = ['constructor', 'prototype', 'tostring', 'hasownproperty', 'valueof'] as const;
const TEN = path.join(ROOT, 'bin', 'ten.mjs');
const QUIET = { healthInterval: '1h' } as const;

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/**
 * One request with a bounded wait. A Server-Sent Events answer (a logs stream that was allowed) never ends: its
 * status is what counts, and the connection is dropped once the head is in.
 */
function call(kernel: TestKernel, method: string, url: string, headers: Record<string, string>, body?: unknown, host = 'localhost'): Promise<Answer> {
  const base = new URL(kernel.url);
  const payload = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path: url,
        agent: false,
        timeout: 60_000,
        headers: { host, ...headers, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) },
      },
      (res) => {
        if (String(res.headers['content-type']).startsWith('text/event-stream')) {
          res.destroy();
          return resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' });
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out`)));
    req.on('error', reject);
    req.end(payload);
  });
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

function codeOf(answer: Answer): string | undefined {
  try {
    return (JSON.parse(answer.body) as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

/** A 4xx must say what is wrong with a TNM_ERR_* code; nothing a name can do is a 5xx. */
function assertCoded(answer: Answer, what: string): void {
  assert.ok(answer.status < 500, `${what}: ${answer.status} ${answer.body}`);
  if (answer.status >= 400) assert.match(codeOf(answer) ?? '', /^TNM_ERR_[A-Z_]+$/, `${what}: ${answer.status} ${answer.body}`);
}

async function assertServing(kernel: TestKernel, what: string): Promise<void> {
  const health = await call(kernel, 'GET', '/health', {});
  assert.equal(health.status, 200, `the server still answers after ${what}`);
}

/**
 * No ghost: every registered instance belongs to a configured service and carries that service's own config,
 * and the state store lists exactly the registered instances.
 */
function assertNoGhost(kernel: TestKernel, what: string): void {
  for (const instance of kernel.instances.list()) {
    assert.equal(instance.config, serviceConfig(kernel.config, instance.service), `${what}: ${instance.key} has its service's config`);
  }
  const stored = kernel.store
    .listInstances()
    .map((row) => `${row.service}:${row.id}`)
    .sort();
  const registered = kernel.instances
    .list()
    .map((instance) => instance.key)
    .sort();
  assert.deepEqual(stored, registered, `${what}: the store holds exactly the registered instances`);
}

async function namesKernel(t: TestContext, config: ConfigInput): Promise<TestKernel> {
  const kernel = await createTestKernel({ plugins: defaultPlugins, config: { ...config, settings: { ...QUIET, ...config.settings } } });
  t.after(() => kernel.close());
  return kernel;
}

const adminToken = (kernel: TestKernel): string => readFileSync(path.join(kernel.config.settings.dataDir, 'admin.token'), 'utf8').trim();

async function tenantToken(kernel: TestKernel, admin: Record<string, string>, tenant: string): Promise<string> {
  const made = await call(kernel, 'POST', '/api/tokens', admin, { name: `names-${tenant}`, tenant });
  assert.equal(made.status, 201, made.body);
  return (JSON.parse(made.body) as { token: string }).token;
}

/** Bodies and queries of the routes that take names there; any other route gets the generic ones. */
function inputsFor(method: string, url: string, name: string): { query: string; body: unknown } {
  const q = (params: Record<string, string>): string => `?${new URLSearchParams(params).toString()}`;
  if (url === '/api/deploy') return { query: '', body: { service: 'web', version: name } };
  if (url === '/api/route') return { query: '', body: { service: name, from: 'alice', to: name } };
  if (url === '/api/tokens' && method === 'POST') return { query: '', body: { name, tenant: name } };
  if (url.endsWith('/weight')) return { query: '', body: { weight: 5 } };
  if (url === '/api/instances') return { query: q({ service: name }), body: undefined };
  if (url.startsWith('/api/logs')) return { query: q({ service: name, id: name }), body: undefined };
  return { query: '', body: method === 'GET' || method === 'DELETE' ? undefined : {} };
}

test('every API route, with each prototype name in each path parameter, body and query, for admin and tenant tokens: coded answers, no 500, no ghost, the server keeps serving', { timeout: 600_000 }, async (t) => {
  const kernel = await namesKernel(t, { services: { web: echoService({ tenants: { create: true } }) }, instances: { web: ['alice'] } });
  await waitFor(() => kernel.instances.get('web', 'alice')?.state === 'running', 'web:alice running', 30_000);
  const admin = bearer(adminToken(kernel));
  const callers: Array<[string, Record<string, string>]> = [
    ['admin', admin],
    ['tenant alice', bearer(await tenantToken(kernel, admin, 'alice'))],
    ['tenant constructor', bearer(await tenantToken(kernel, admin, 'constructor'))],
  ];

  const routes = kernel.api.routes;
  assert.ok(routes.length >= 15, `the routes are enumerated (${routes.length})`);
  const withParams = routes.filter((route) => route.url.includes(':'));
  assert.ok(withParams.some((route) => route.url.includes(':service')) && withParams.some((route) => route.url === '/api/tokens/:id'));

  let calls = 0;
  for (const route of routes) {
    const params = [...route.url.matchAll(/:(\w+)/g)].map((m) => m[1]!);
    for (const name of NAMES) {
      // Each parameter in turn gets the name, the others a real value; a route without parameters gets the name
      // in its body or query.
      const urls = params.length === 0 ? [route.url] : params.map((param) => route.url.replace(/:(\w+)/g, (_m, p: string) => (p === param ? encodeURIComponent(name) : p === 'service' ? 'web' : 'alice')));
      for (const url of urls) {
        const { query, body } = inputsFor(route.method, route.url, name);
        for (const [who, headers] of callers) {
          const what = `${who}: ${route.method} ${url}${query}${body === undefined ? '' : ` ${JSON.stringify(body)}`}`;
          const answer = await call(kernel, route.method, url + query, headers, body);
          calls += 1;
          assertCoded(answer, what);
          await assertServing(kernel, what);
          assertNoGhost(kernel, what);
          // A name that is a valid instance id can legitimately be created (the admin, a deploy): it must be a real,
          // working instance, and it is removed again so every call starts from the same state.
          for (const instance of kernel.instances.list()) {
            if (instance.key === 'web:alice') continue;
            assert.ok((LABELS as readonly string[]).includes(instance.id), `${what}: only a valid name was created (${instance.key})`);
            const reached = await call(kernel, 'GET', '/echo', {}, undefined, `${instance.id}.web.localhost`);
            assert.equal(reached.status, 200, `${what}: ${instance.key} serves`);
            assert.equal(reached.headers['x-instance'], instance.key);
            await kernel.removeInstance(instance);
          }
        }
      }
    }
  }
  assert.ok(calls > 500, `${calls} calls`);
  assert.equal(kernel.instances.get('web', 'alice')?.state, 'running');
});

test('Host headers made of prototype names are routed as data: coded 4xx, or the real instance when the name is legit', { timeout: 120_000 }, async (t) => {
  const kernel = await namesKernel(t, {
    services: { web: echoService(), auto: echoService({ autoCreate: true }) },
    instances: { web: ['alice'] },
  });
  await waitFor(() => kernel.instances.get('web', 'alice')?.state === 'running', 'web:alice running', 30_000);
  const hosts: string[] = [];
  for (const name of NAMES) {
    hosts.push(`${name}.localhost`, `${name}.web.localhost`, `alice.${name}.localhost`, `${name}.${name}.localhost`, `${name}.alice.web.localhost`);
  }
  for (const host of hosts) {
    // Each through the fast path (a plain GET) and through node:http (an upgrade is handed over there).
    for (const headers of [{}, { connection: 'upgrade', upgrade: 'websocket' }] as Array<Record<string, string>>) {
      const answer = await call(kernel, 'GET', '/echo', headers, undefined, host).catch((error: Error): Answer => ({ status: 0, headers: {}, body: error.message }));
      const what = `Host ${host} ${JSON.stringify(headers)}`;
      if (headers.upgrade && answer.status === 0) continue; // an upgrade to an instance's echo is not HTTP after the 101
      assert.notEqual(answer.status, 0, `${what}: ${answer.body}`);
      assertCoded(answer, what);
      if (answer.status >= 400) continue;
      assert.equal(answer.status, 200);
      assert.ok(host === 'alice.web.localhost' || /\.auto\.localhost$/.test(host), `${what} reached ${String(answer.headers['x-instance'])}`);
    }
    await assertServing(kernel, host);
    assertNoGhost(kernel, host);
  }
  // The exact answers for the interesting ones.
  const expect = async (host: string, status: number, code: string): Promise<void> => {
    const answer = await call(kernel, 'GET', '/echo', {}, undefined, host);
    assert.equal(answer.status, status, `${host}: ${answer.body}`);
    assert.equal(codeOf(answer), code, host);
  };
  await expect('__proto__.localhost', 400, 'TNM_ERR_BAD_NAME');
  await expect('constructor.localhost', 404, 'TNM_ERR_UNKNOWN_SERVICE');
  await expect('tostring.localhost', 404, 'TNM_ERR_UNKNOWN_SERVICE');
  await expect('alice.constructor.localhost', 404, 'TNM_ERR_UNKNOWN_SERVICE');
  await expect('constructor.web.localhost', 404, 'TNM_ERR_UNKNOWN_INSTANCE');
  await expect('valueof.web.localhost', 404, 'TNM_ERR_UNKNOWN_INSTANCE');
  assert.deepEqual(
    kernel.instances
      .list()
      .map((i) => i.key)
      .filter((key) => key.startsWith('web:')),
    ['web:alice'],
  );
  // autoCreate makes real instances of legit names (and nothing of the others).
  const made = await call(kernel, 'GET', '/echo', {}, undefined, 'constructor.auto.localhost');
  assert.equal(made.status, 200, made.body);
  assert.equal(made.headers['x-instance'], 'auto:constructor');
  // Header names are data too: the app gets them as sent.
  const named = JSON.parse('{"constructor":"c","__proto__":"p","tostring":"t"}') as Record<string, string>;
  const echoed = await call(kernel, 'GET', '/echo', named, undefined, 'alice.web.localhost');
  assert.equal(echoed.status, 200);
  const seen = JSON.parse(echoed.body) as { headers: Record<string, string>; rawHeaders: string[] };
  assert.equal(seen.headers.constructor, 'c');
  assert.equal(seen.headers.tostring, 't');
  // (Node's parser in the app leaves `__proto__` out of req.headers; the proxy forwarded it as sent.)
  assert.equal(seen.rawHeaders[seen.rawHeaders.indexOf('__proto__') + 1], 'p');
});

test('a service named constructor with instances named tostring, constructor and prototype works end to end, across a restart', { timeout: 180_000 }, async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-names-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const config: ConfigInput = {
    settings: { dataDir, ...QUIET },
    services: {
      constructor: echoService({ tenants: { create: true, maxWeight: 50 } }),
      prototype: echoService({ autoCreate: true }),
    },
    instances: { constructor: ['tostring', 'constructor'] },
  };
  const first = await createTestKernel({ plugins: defaultPlugins, config });
  try {
    await waitFor(() => first.instances.list().every((i) => i.state === 'running') && first.instances.size === 2, 'both running', 30_000);
    const admin = bearer(adminToken(first));
    const direct = await call(first, 'GET', '/echo', {}, undefined, 'tostring.constructor.localhost');
    assert.equal(direct.status, 200, direct.body);
    assert.equal(direct.headers['x-instance'], 'constructor:tostring');
    const weighted = await call(first, 'GET', '/echo', {}, undefined, 'constructor.localhost');
    assert.equal(weighted.status, 200, weighted.body);
    assert.match(String(weighted.headers['x-instance']), /^constructor:(tostring|constructor)$/);

    // The API on it: read, weigh, restart, hibernate, wake, with the admin token and the instance's own tenant.
    const own = bearer(await tenantToken(first, admin, 'tostring'));
    const got = await call(first, 'GET', '/api/instances/constructor/tostring', own);
    assert.equal(got.status, 200, got.body);
    assert.equal((JSON.parse(got.body) as { key: string }).key, 'constructor:tostring');
    assert.equal((await call(first, 'PUT', '/api/instances/constructor/tostring/weight', own, { weight: 40 })).status, 200);
    assert.equal((await call(first, 'POST', '/api/instances/constructor/tostring/restart', admin)).status, 200);
    assert.equal((await call(first, 'POST', '/api/instances/constructor/tostring/hibernate', own)).status, 200);
    assert.equal((await call(first, 'GET', '/echo', {}, undefined, 'tostring.constructor.localhost')).status, 200, 'woken');
    // A tenant named prototype creates its own instance where the service grants it.
    const proto = bearer(await tenantToken(first, admin, 'prototype'));
    const created = await call(first, 'POST', '/api/instances/constructor/prototype', proto);
    assert.equal(created.status, 201, created.body);
    assert.equal((JSON.parse(created.body) as { weight: number }).weight, 50, 'min(weight, tenants.maxWeight)');
    // Metrics and logs name it like any other service.
    const metrics = await call(first, 'GET', '/api/metrics', admin);
    assert.match(metrics.body, /service="constructor"/);
    assert.equal((await call(first, 'GET', '/api/logs?service=constructor&id=tostring', own)).status, 200);
    // autoCreate in a service named prototype.
    const auto = await call(first, 'GET', '/echo', {}, undefined, 'valueof.prototype.localhost');
    assert.equal(auto.status, 200, auto.body);
    assert.equal(auto.headers['x-instance'], 'prototype:valueof');

    // Unknown names are coded 404s, and nothing is created.
    const unknownService = await call(first, 'POST', '/api/instances/hasownproperty/x', admin);
    assert.equal(unknownService.status, 404);
    assert.equal(codeOf(unknownService), 'TNM_ERR_UNKNOWN_SERVICE');
    const unknownInstance = await call(first, 'GET', '/api/instances/constructor/valueof', admin);
    assert.equal(unknownInstance.status, 404);
    assert.equal(codeOf(unknownInstance), 'TNM_ERR_UNKNOWN_INSTANCE');
    const badName = await call(first, 'GET', '/api/instances/constructor/toString', admin);
    assert.equal(badName.status, 400);
    assert.equal(codeOf(badName), 'TNM_ERR_BAD_REQUEST');
    assertNoGhost(first, 'the end-to-end run');
  } finally {
    await first.close();
  }

  // Restored from the state store through the same lookups.
  const second = await createTestKernel({ plugins: defaultPlugins, config });
  try {
    assert.deepEqual(
      second.instances
        .list()
        .map((i) => i.key)
        .sort(),
      ['constructor:constructor', 'constructor:prototype', 'constructor:tostring', 'prototype:valueof'],
    );
    assertNoGhost(second, 'after the restart');
    await waitFor(() => second.instances.get('constructor', 'tostring')?.state === 'running', 'constructor:tostring running again', 30_000);
    assert.equal(second.instances.get('constructor', 'tostring')!.weight, 40, 'its weight persisted');
    const again = await call(second, 'GET', '/echo', {}, undefined, 'tostring.constructor.localhost');
    assert.equal(again.status, 200);
  } finally {
    await second.close();
  }
});

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function ten(args: string[], server: string, token: string): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('TENEMENT_')) env[key] = value;
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [TEN, ...args],
      { cwd: os.tmpdir(), timeout: 60_000, env: { ...env, TENEMENT_SERVER: server, TENEMENT_TOKEN: token, NO_COLOR: '1' } },
      (error, stdout, stderr) => resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
    );
  });
}

test('CLI arguments made of prototype names: one coded line or a correct answer, against a running server', { timeout: 300_000 }, async (t) => {
  const kernel = await namesKernel(t, { services: { web: echoService() }, instances: { web: ['alice'] } });
  await waitFor(() => kernel.instances.get('web', 'alice')?.state === 'running', 'web:alice running', 30_000);
  const token = adminToken(kernel);
  const commands: string[][] = [];
  for (const name of NAMES) {
    commands.push(
      ['ps', '--service', name],
      ['ps', name],
      ['spawn', `${name}:x`],
      ['restart', `${name}:x`],
      ['restart', `web:${name}`],
      ['stop', `${name}:${name}`],
      ['health', `web:${name}`],
      ['weight', `${name}:alice`, '5'],
      ['hibernate', `web:${name}`],
      ['logs', name],
      ['logs', `web:${name}`],
      ['token', 'revoke', name],
      ['route', name, '--from', 'alice', '--to', name],
      ['snapshot', 'restore', 'web:alice', name],
      ['snapshot', 'list', `web:${name}`],
    );
  }
  // Four CLI processes at a time (each spends most of its time starting node): none of these commands changes
  // an instance (they name services and instances that do not exist), so one's checks cannot see another's
  // work half done, and a ghost any of them made stays for every later check to see.
  let next = 0;
  const runner = async (): Promise<void> => {
    while (next < commands.length) {
      const args = commands[next++]!;
      const result = await ten(args, kernel.url, token);
      const what = `ten ${args.join(' ')}`;
      assert.ok(result.code === 0 || result.code === 1, `${what}: exit ${result.code} ${result.stderr}`);
      if (result.code === 1) {
        assert.match(result.stderr, /^(ten: |error: )[^\n]+\n/, `${what}: one line: ${JSON.stringify(result.stderr)}`);
        assert.doesNotMatch(result.stderr, /TNM_ERR_HOOK_FAILED|Cannot read properties|TypeError/, what);
      }
      await assertServing(kernel, what);
      assertNoGhost(kernel, what);
    }
  };
  await Promise.all(Array.from({ length: 4 }, runner));
  // The reported crash, through the CLI: no service named constructor here, so a coded 404 and nothing created.
  const unknown = await ten(['spawn', 'constructor:bob'], kernel.url, token);
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /^ten: TNM_ERR_UNKNOWN_SERVICE/);
  // An instance named constructor is an ordinary one.
  const spawned = await ten(['spawn', 'web:constructor'], kernel.url, token);
  assert.equal(spawned.code, 0, spawned.stderr);
  const ps = await ten(['ps', '--service', 'web', '--json'], kernel.url, token);
  assert.ok((JSON.parse(ps.stdout) as { instances: Array<{ key: string }> }).instances.some((i) => i.key === 'web:constructor'), ps.stdout);
  const restarted = await ten(['restart', 'web:constructor'], kernel.url, token);
  assert.equal(restarted.code, 0, restarted.stderr);
  const missing = await ten(['restart', 'web:valueof'], kernel.url, token);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^ten: TNM_ERR_UNKNOWN_INSTANCE/);
  assertNoGhost(kernel, 'the end');
});

/** A JSON config, so keys like `__proto__` are own keys as they would be in tenement.config.json. */
function fromJson(json: string): unknown {
  return JSON.parse(json);
}

function configError(raw: unknown): string {
  try {
    resolveConfig(raw, { path: null, dir: os.tmpdir() });
  } catch (error) {
    assert.ok(error instanceof TenementError, String(error));
    assert.equal(error.code, 'TNM_ERR_CONFIG_INVALID');
    return error.message;
  }
  assert.fail(`accepted: ${JSON.stringify(raw)}`);
}

test('config keys named like prototype members: legit ones are data, the others are config errors naming the key', { timeout: 120_000 }, async (t) => {
  const echo = JSON.stringify({ command: `node ${ECHO_APP}` });
  // services
  assert.match(configError(fromJson(`{"services":{"__proto__":${echo}}}`)), /services\.__proto__/);
  assert.match(configError(fromJson(`{"services":{"toString":${echo}}}`)), /services\.toString.*DNS label|services.*toString/);
  // instances naming a service that does not exist (before: `in` found Object.prototype.constructor, and the
  // kernel crashed at boot creating an instance with it as its config)
  for (const name of ['constructor', 'valueof', 'hasownproperty']) {
    assert.match(configError(fromJson(`{"services":{"web":${echo}},"instances":{"${name}":["a"]}}`)), new RegExp(`instances\\.${name}: unknown service`));
  }
  assert.match(configError(fromJson(`{"services":{"web":${echo}},"instances":{"__proto__":["a"]}}`)), /instances\.__proto__/);
  assert.match(configError(fromJson(`{"services":{"web":${echo}},"instances":{"web":["toString"]}}`)), /instances\.web\.0/);
  // pluginOptions
  assert.match(configError(fromJson('{"pluginOptions":{"__proto__":{"public":false}}}')), /pluginOptions\.__proto__/);
  assert.match(configError(fromJson('{"pluginOptions":{"toString":{}}}')), /pluginOptions\.toString/);
  // env
  assert.match(configError(fromJson(`{"services":{"web":{"command":"x","env":{"__proto__":"p"}}}}`)), /services\.web\.env\.__proto__/);

  // A plugin named constructor gets its own options, not Object.prototype.constructor.
  const seen: unknown[] = [];
  const named = (name: string) =>
    definePlugin<unknown>({ name, version: '1.0.0', kernel: '^1', setup: (ctx) => void seen.push(ctx.config) });
  const kernel = await createTestKernel({
    plugins: [named('constructor'), named('tostring'), named('valueof')],
    config: { pluginOptions: { valueof: { x: 1 } } },
  });
  await kernel.close();
  assert.deepEqual(seen, [undefined, undefined, { x: 1 }]);
  const unloaded = await createTestKernel({ plugins: [], config: { pluginOptions: { constructor: {} } } }).then(
    (k) => k.close().then(() => null),
    (error: unknown) => error,
  );
  assert.ok(unloaded instanceof TenementError && /no plugin named 'constructor'/.test(unloaded.message), String(unloaded));

  // env keys named like prototype members reach the app as ordinary variables.
  const app = "require('http').createServer((q,r)=>r.end(JSON.stringify({c:process.env.constructor,t:process.env.toString,v:process.env.valueOf}))).listen(process.env.PORT,process.env.HOST)";
  const envKernel = await namesKernel(t, {
    services: { web: { command: 'node', args: ['-e', app], env: { constructor: 'c', toString: 't', valueOf: 'v' } } },
    instances: { web: ['alice'] },
  });
  const answer = await request(envKernel, 'alice.web.localhost', '/');
  assert.equal(answer.status, 200, answer.body);
  assert.deepEqual(JSON.parse(answer.body), { c: 'c', t: 't', v: 'v' });
});

test('a stored instance of a service named constructor that left the config is skipped at boot, not started with Object as its config', { timeout: 120_000 }, async (t) => {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tenement-names-gone-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const first = await createTestKernel({
    plugins: defaultPlugins,
    config: { settings: { dataDir, ...QUIET }, services: { constructor: echoService() }, instances: { constructor: ['bob'] } },
  });
  await waitFor(() => first.instances.get('constructor', 'bob')?.state === 'running', 'constructor:bob running', 30_000);
  await first.close();

  const second = await createTestKernel({ plugins: defaultPlugins, config: { settings: { dataDir, ...QUIET }, services: { web: echoService() } } });
  try {
    assert.equal(second.instances.size, 0, 'the stored constructor:bob is skipped');
    const answer = await call(second, 'GET', '/echo', {}, undefined, 'bob.constructor.localhost');
    assert.equal(answer.status, 404);
    assert.equal(codeOf(answer), 'TNM_ERR_UNKNOWN_SERVICE');
    await assertServing(second, 'the request');
  } finally {
    await second.close();
  }
});
