// Alert webhooks (plugins/webhooks) end to end: `ten serve` as a real child process, instances that really
// crash, and real HTTP receivers on loopback (a well-behaved one, and hostile ones that hang, flood or redirect).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { Gauge } from 'prom-client';
import { isTenementError } from '../../core/errors.ts';
import { Store } from '../../core/store.ts';
import { createTestKernel } from '../../core/test-kernel.ts';
import webhooksPlugin from '../../plugins/webhooks/index.ts';
import storagePlugin from '../../plugins/storage/index.ts';
import { Outbox } from '../../plugins/webhooks/outbox.ts';
import processRuntime from '../../runtimes/process/index.ts';
import { definePlugin } from '../../sdk/index.ts';
import { ECHO_APP, ROOT, freePort, onPath, request, servePlugins, sleep, waitFor } from '../helpers.ts';
import { adminToken, projectDir, startServe, writeJsonConfig, type ServeChild } from '../security/serve-child.ts';
import { removeScratchDataDir } from '../storage-scratch.ts';

const SECRET = 'whsec_test_0123456789abcdef';

interface Received {
  headers: http.IncomingHttpHeaders;
  raw: string;
  body: Record<string, unknown>;
}

type Behaviour = (req: IncomingMessage, res: ServerResponse) => void;

interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** Answers for the next requests, in order; then 200. */
  script: Behaviour[];
  close(): Promise<void>;
}

const closers: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const close of closers.reverse()) await close();
});

/** A webhook receiver on loopback; every request is recorded whole before the scripted answer. */
async function receiver(port = 0, host = '127.0.0.1'): Promise<Receiver> {
  const received: Received[] = [];
  const script: Behaviour[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        // recorded as is
      }
      received.push({ headers: req.headers, raw, body });
      const behaviour = script.shift();
      if (behaviour) behaviour(req, res);
      else res.end('ok');
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const bound = (server.address() as AddressInfo).port;
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  closers.push(close);
  return { url: `http://${host}:${bound}/hook`, port: bound, received, script, close };
}

/** The receiver's side, as docs/observability.md shows it: HMAC-SHA256 over `${t}.${raw body}`, t within 5 minutes. */
function verifySignature(secret: string, raw: string, header: string | undefined): boolean {
  if (!header) return false;
  const fields = Object.fromEntries(header.split(',').map((kv) => kv.split('=', 2) as [string, string]));
  const t = Number(fields.t);
  if (!Number.isInteger(t) || Math.abs(Date.now() / 1000 - t) > 300) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${raw}`).digest('hex');
  const given = String(fields.v1 ?? '');
  return given.length === expected.length && timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

/** An app that exits at once unless the file `ok` exists next to it: fails past its restart limit on demand. */
function crashApp(dir: string): string {
  const file = path.join(dir, 'crash-app.mjs');
  writeFileSync(
    file,
    `import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
if (!existsSync(${JSON.stringify(path.join(dir, 'ok'))})) { console.error('no ok file: exiting'); process.exit(3); }
createServer((req, res) => res.end('up')).listen(Number(process.env.PORT), process.env.HOST);
`,
  );
  return file;
}

interface Setup {
  dir: string;
  port: number;
  configFile: string;
}

async function project(prefix: string, alerts: Record<string, unknown>, extraServices: Record<string, unknown> = {}): Promise<Setup> {
  const dir = projectDir(`tenement-webhooks-${prefix}-`);
  const app = crashApp(dir);
  const port = await freePort();
  const configFile = writeJsonConfig(dir, {
    settings: { port, dataDir: './data', domain: 'localhost', alerts },
    services: {
      crashy: {
        command: `node ${app}`,
        restart: 'always',
        maxRestarts: 1,
        backoff: { base: '50ms', max: '100ms' },
        idleTimeout: false,
        startupTimeout: '10s',
        stopTimeout: '2s',
      },
      ...extraServices,
    },
    instances: { crashy: ['a'] },
  });
  return { dir, port, configFile };
}

async function serve(setup: Setup): Promise<ServeChild> {
  const child = await startServe(setup.dir, setup.configFile, setup.port);
  closers.push(async () => {
    if (!child.exited()) child.child.kill('SIGKILL');
    await child.exit;
  });
  return child;
}

async function api<T>(serve: ServeChild, url: string, options: { method?: string; token?: string } = {}): Promise<{ status: number; body: T }> {
  const response = await fetch(`${serve.url}${url}`, {
    method: options.method ?? 'GET',
    headers: { authorization: `Bearer ${options.token ?? adminToken(serve.dataDir)}` },
    signal: AbortSignal.timeout(30_000),
  });
  return { status: response.status, body: (await response.json()) as T };
}

interface Delivery {
  id: number;
  delivery: string;
  alert: string;
  webhook: string;
  kind: string;
  rule: string;
  instance: string | null;
  state: string;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  nextAttemptAt: string | null;
}

async function deliveries(serve: ServeChild): Promise<Delivery[]> {
  const answer = await api<{ deliveries: Delivery[] }>(serve, '/api/alerts');
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  return answer.body.deliveries;
}

async function instanceState(serve: ServeChild, key: string): Promise<string> {
  const [service, id] = key.split(':');
  const answer = await api<{ state: string }>(serve, `/api/instances/${service}/${id}`);
  return answer.body.state;
}

/** `ten alerts` against the server, as a user runs it. */
function tenAlerts(serve: ServeChild, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn(process.execPath, [path.join(ROOT, 'bin', 'ten.mjs'), 'alerts', '--server', serve.url, '--token', adminToken(serve.dataDir), ...args], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Fast settings for tests: evaluation every 100ms, retries from 200ms. */
function alerts(webhooks: unknown[], rules: unknown[] = [{ on: 'failed' }], delivery: Record<string, unknown> = {}): Record<string, unknown> {
  return { webhooks, rules, interval: '100ms', cooldown: '1m', delivery: { timeout: '3s', backoff: { base: '200ms', max: '1s' }, ...delivery } };
}

describe('alert webhooks', { timeout: 300_000 }, () => {
  test('an instance killed past its restart limit sends one signed alert, visible in the API and `ten alerts`', async (t) => {
    const hook = await receiver();
    // A metric rule with a misspelt name (the metric is tenement_instance_resident_memory_bytes) is said once in the log.
    const rules = [{ on: 'failed' }, { name: 'typo', metric: 'tenement_instance_memory_bytes', above: 1 }];
    const setup = await project('signed', alerts([{ name: 'ops', url: hook.url, secret: SECRET }], rules));
    const server = await serve(setup);
    t.after(() => server.stop());
    await waitFor(() => hook.received.length >= 1, 'the alert at the receiver', 60_000);
    const [alert] = hook.received;
    assert.ok(verifySignature(SECRET, alert!.raw, alert!.headers['tenement-signature'] as string), `signature ${alert!.headers['tenement-signature']}`);
    assert.equal(verifySignature('another-secret-0123456789', alert!.raw, alert!.headers['tenement-signature'] as string), false);
    assert.equal(verifySignature(SECRET, alert!.raw.replace('crashy', 'crashz'), alert!.headers['tenement-signature'] as string), false, 'a changed body fails');
    assert.equal(alert!.body.type, 'alert.firing');
    assert.equal(alert!.body.rule, 'failed');
    assert.equal(alert!.body.instance, 'crashy:a');
    assert.match(String(alert!.body.detail), /gave up after 1 restarts/);
    assert.equal(alert!.headers['tenement-event'], 'firing');
    assert.equal(alert!.headers['tenement-alert'], alert!.body.id);

    await waitFor(async () => (await deliveries(server))[0]?.state === 'delivered', 'the delivery recorded as delivered', 10_000);
    const [row] = await deliveries(server);
    assert.equal(row!.attempts, 1);
    assert.equal(row!.lastStatus, 200);
    assert.equal(row!.delivery, alert!.headers['tenement-delivery']);
    assert.equal(row!.nextAttemptAt, null);
    assert.ok(!JSON.stringify(row).includes(hook.url), 'the API never shows the webhook URL');

    // Admin only: a tenant token, even the affected tenant's, gets 403.
    const created = await fetch(`${server.url}/api/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminToken(server.dataDir)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'tenant-a', tenant: 'a' }),
    });
    const tenant = ((await created.json()) as { token: string }).token;
    assert.equal((await api(server, '/api/alerts', { token: tenant })).status, 403);
    assert.equal((await api(server, '/api/alerts?state=bogus')).status, 400);
    assert.equal((await api(server, '/api/alerts?limit=100000')).status, 400);
    assert.equal((await api(server, '/api/alerts?before=0')).status, 400);
    assert.equal((await api(server, '/api/alerts?surprise=1')).status, 400);
    for (const name of ['__proto__', 'constructor', "ops' OR 1=1 --"]) {
      const filtered = await api<{ deliveries: Delivery[] }>(server, `/api/alerts?webhook=${encodeURIComponent(name)}`);
      assert.equal(filtered.status, 200);
      assert.deepEqual(filtered.body.deliveries, [], `webhook=${name} matches nothing`);
    }
    const page = await api<{ deliveries: Delivery[]; next: number | null }>(server, '/api/alerts?state=delivered&webhook=ops&limit=1');
    assert.equal(page.body.deliveries.length, 1);

    // Three CLI processes at once: each spends most of its time loading.
    const [cli, table, bad] = await Promise.all([tenAlerts(server, ['--json']), tenAlerts(server, []), tenAlerts(server, ['--state', 'nope'])]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal((JSON.parse(cli.stdout) as { deliveries: Delivery[] }).deliveries[0]?.alert, alert!.body.id);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /crashy:a/);
    assert.match(table.stdout, /delivered/);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /nope/);
    // Exactly one alert: no second message for the same incident.
    await sleep(500);
    assert.equal(hook.received.length, 1);
    assert.equal(server.output().match(/no metric named tenement_instance_memory_bytes/g)?.length, 1, 'the missing metric is said once');
    assert.ok(!server.output().includes(SECRET), 'the secret is never logged');
    assert.ok(!JSON.stringify(await deliveries(server)).includes(SECRET), 'nor shown by the API');
  });

  test('a receiver answering 500 then 200 gets the alert once, after one retry (two attempts recorded)', async (t) => {
    const hook = await receiver();
    hook.script.push((_req, res) => {
      res.statusCode = 500;
      res.end('try again later');
    });
    const setup = await project('retry', alerts([{ name: 'ops', url: hook.url, secret: SECRET }]));
    const server = await serve(setup);
    t.after(() => server.stop());
    await waitFor(async () => (await deliveries(server))[0]?.state === 'delivered', 'the delivery after its retry', 60_000);
    const [row] = await deliveries(server);
    assert.equal(row!.attempts, 2);
    assert.equal(row!.lastStatus, 200);
    assert.equal(hook.received.length, 2, 'one failed attempt, one accepted');
    const [first, second] = hook.received;
    assert.equal(first!.headers['tenement-delivery'], second!.headers['tenement-delivery'], 'the same delivery id on the retry');
    assert.equal(first!.raw, second!.raw, 'the same body on the retry');
    assert.equal(second!.headers['tenement-attempt'], '2');
    assert.ok(verifySignature(SECRET, second!.raw, second!.headers['tenement-signature'] as string));
    await sleep(700);
    assert.equal(hook.received.length, 2, 'nothing more once delivered');
  });

  test('ten serve killed (SIGKILL) before the delivery succeeded still delivers it after its restart', async (t) => {
    const port = await freePort(); // nobody listens there yet: attempts are refused
    const url = `http://127.0.0.1:${port}/hook`;
    const setup = await project('durable', alerts([{ name: 'ops', url, secret: SECRET }], [{ on: 'failed' }], { backoff: { base: '300ms', max: '600ms' } }));
    let server = await serve(setup);
    t.after(() => server.stop());
    await waitFor(async () => ((await deliveries(server))[0]?.attempts ?? 0) >= 1, 'a refused attempt', 60_000);
    const [pending] = await deliveries(server);
    assert.equal(pending!.state, 'pending');
    assert.match(pending!.lastError ?? '', /ECONNREFUSED/);
    assert.ok(pending!.nextAttemptAt !== null);

    server.child.kill('SIGKILL');
    await server.exit;
    const hook = await receiver(port);
    server = await serve(setup);
    await waitFor(() => hook.received.some((r) => r.body.id === pending!.alert), 'the alert raised before the crash, after the restart', 60_000);
    const delivered = hook.received.find((r) => r.body.id === pending!.alert)!;
    assert.ok(verifySignature(SECRET, delivered.raw, delivered.headers['tenement-signature'] as string));
    assert.equal(delivered.headers['tenement-delivery'], pending!.delivery);
    await waitFor(
      async () => (await deliveries(server)).find((d) => d.delivery === pending!.delivery)?.state === 'delivered',
      'the row recorded as delivered',
      10_000,
    );
  });

  test('cool-down: repeated failures within it give one alert, then a resolved one when the instance runs again', async (t) => {
    const hook = await receiver();
    const setup = await project('cooldown', alerts([{ name: 'ops', url: hook.url, secret: SECRET, format: 'generic' }]));
    const server = await serve(setup);
    t.after(() => server.stop());
    await waitFor(() => hook.received.length >= 1, 'the first alert', 60_000);
    // Fails again (the restart revives it, it crashes past its limit again) within the cool-down.
    await api(server, '/api/instances/crashy/a/restart', { method: 'POST' });
    await waitFor(async () => (await instanceState(server, 'crashy:a')) === 'failed', 'crashy:a failed again', 30_000);
    await api(server, '/api/instances/crashy/a/restart', { method: 'POST' });
    await waitFor(async () => (await instanceState(server, 'crashy:a')) === 'failed', 'crashy:a failed a third time', 30_000);
    await sleep(500);
    assert.equal(hook.received.length, 1, 'one alert for the incident');

    writeFileSync(path.join(setup.dir, 'ok'), '');
    const restarted = await api<{ state: string }>(server, '/api/instances/crashy/a/restart', { method: 'POST' });
    assert.equal(restarted.body.state, 'running');
    await waitFor(() => hook.received.length >= 2, 'the resolved message', 30_000);
    const [firing, resolved] = hook.received;
    assert.equal(firing!.body.kind, 'firing');
    assert.equal(resolved!.body.kind, 'resolved');
    assert.equal(resolved!.body.id, firing!.body.id, 'one incident: the same alert id');
    assert.equal(resolved!.body.count, 3, 'the three failures merged into it');
    assert.match(String(resolved!.body.summary), /running again/);
    assert.ok(verifySignature(SECRET, resolved!.raw, resolved!.headers['tenement-signature'] as string));
    await sleep(500);
    assert.equal(hook.received.length, 2);
  });

  test('hostile receivers (a hang, a huge body, a redirect) block neither the server nor the other webhooks', async (t) => {
    const good = await receiver();
    const hang = await receiver();
    hang.script.push(() => undefined); // never answers
    const huge = await receiver();
    let hugeBytes = 0;
    huge.script.push((_req, res) => {
      res.writeHead(500, { 'content-type': 'text/plain' });
      const chunk = Buffer.alloc(64 * 1024, 'x');
      const pump = (): void => {
        while (!res.destroyed && hugeBytes < 1024 ** 3) {
          hugeBytes += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      pump();
    });
    const elsewhere = await receiver(0, '127.0.0.2');
    const redirect = await receiver();
    redirect.script.push((_req, res) => {
      res.writeHead(307, { location: elsewhere.url });
      res.end();
    });
    const setup = await project(
      'hostile',
      alerts(
        [
          { name: 'hang', url: hang.url, secret: SECRET },
          { name: 'huge', url: huge.url, secret: SECRET },
          { name: 'redirect', url: redirect.url, secret: SECRET },
          { name: 'slack', url: good.url, format: 'slack' },
        ],
        [{ on: 'failed' }],
        // The hang is checked still pending ~0.3 s after the alert: 4 s leaves a wide margin, and the test waits it out.
        { timeout: '4s', backoff: { base: '30s', max: '1m' } },
      ),
    );
    const server = await serve(setup);
    t.after(() => server.stop());
    await waitFor(() => good.received.length >= 1, 'the alert at the well-behaved webhook', 60_000);
    // The Slack-compatible body, unsigned (no secret configured).
    const slack = good.received[0]!;
    assert.match(String(slack.body.text), /\[FIRING\] crashy:a failed/);
    assert.ok(Array.isArray(slack.body.blocks));
    assert.equal(slack.headers['tenement-signature'], undefined);

    await waitFor(async () => {
      const rows = await deliveries(server);
      const of = (name: string) => rows.find((r) => r.webhook === name);
      return of('huge')?.attempts === 1 && of('redirect')?.attempts === 1 && of('slack')?.state === 'delivered';
    }, 'the huge and redirect attempts recorded', 15_000);
    const rows = await deliveries(server);
    const of = (name: string) => rows.find((r) => r.webhook === name)!;
    assert.equal(of('huge').lastStatus, 500);
    assert.match(of('huge').lastError ?? '', /^answered 500: x+/);
    assert.ok(hugeBytes < 512 * 1024 * 1024, `the huge body was not read to its end (${hugeBytes} bytes written)`);
    assert.equal(of('redirect').lastStatus, 307);
    assert.match(of('redirect').lastError ?? '', /not followed/);
    assert.equal(elsewhere.received.length, 0, 'the redirect was not followed');
    // The hanging receiver holds only its own delivery; the server answers meanwhile.
    assert.equal(of('hang').state, 'pending');
    assert.equal(of('hang').attempts, 0, 'still waiting for the hanging receiver');
    const health = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(health.status, 200);
    assert.equal((await api(server, '/api/instances')).status, 200);
    // The hang ends at the request timeout as a failed attempt, with a retry scheduled.
    await waitFor(async () => (await deliveries(server)).find((r) => r.webhook === 'hang')!.attempts === 1, 'the hanging attempt to time out', 40_000);
    const hung = (await deliveries(server)).find((r) => r.webhook === 'hang')!;
    assert.match(hung.lastError ?? '', /no complete answer within 4000ms/);
    assert.equal(hung.state, 'pending');
    assert.ok(hung.nextAttemptAt !== null);
  });
});

describe('alert webhooks in a test kernel', { timeout: 180_000 }, () => {
  const plugins = [processRuntime, webhooksPlugin];

  test('a bad alerts config is refused with a coded error naming each field', async () => {
    const bad = async (alertsConfig: unknown): Promise<string> => {
      const error = await createTestKernel({ plugins, config: { settings: { alerts: alertsConfig } } as never, start: false }).then(
        async (kernel) => {
          await kernel.stop();
          return null;
        },
        (e: unknown) => e,
      );
      assert.ok(isTenementError(error), `refused: ${JSON.stringify(alertsConfig)}`);
      assert.equal(error.code, 'TNM_ERR_CONFIG_INVALID');
      return error.message;
    };
    assert.match(await bad({ webhooks: [{ name: 'ops', url: 'http://127.0.0.1:1/' }] }), /alerts\.webhooks\.0\.secret.*expected a secret for format 'generic'/s);
    assert.match(await bad({ webhooks: [{ name: 'ops', url: 'file:///etc/passwd', secret: SECRET }] }), /alerts\.webhooks\.0\.url.*http:\/\/ or https:\/\//s);
    assert.match(await bad({ webhooks: [{ name: '__proto__', url: 'http://127.0.0.1:1/', secret: SECRET }] }), /alerts\.webhooks\.0\.name/);
    assert.match(await bad({ webhooks: [{ name: 'ops', url: 'http://127.0.0.1:1/', secret: 'short' }] }), /at least 16 characters/);
    assert.match(await bad({ rules: [{ on: 'failed', webhooks: ['nope'] }] }), /alerts\.rules\.0\.webhooks.*unknown webhook 'nope'/s);
    assert.match(await bad({ rules: [{ on: 'failed' }, { on: 'failed' }] }), /alerts\.rules\.1\.name.*two rules are named 'failed'/s);
    assert.match(await bad({ rules: [{ on: 'crashed' }] }), /alerts\.rules\.0\.on.*expected a rule with on: 'failed'/s);
    assert.match(await bad({ rules: [{ on: 'restarts', count: 3 }] }), /alerts\.rules\.0\.within.*expected a window/s);
    assert.match(await bad({ rules: [{ metric: 'm', above: 1, below: 2 }] }), /exactly one of above or below/);
    assert.match(await bad({ rules: [{ metric: 'bad name' }] }), /alerts\.rules\.0\.metric.*Prometheus metric name/s);
    assert.match(await bad({ delivery: { backoff: { base: '1m', max: '1s' } } }), /base <= max/);
    assert.match(await bad({ delivery: { maxRows: 5 } }), /alerts\.delivery\.maxRows/);
    assert.match(await bad({ surprise: true }), /surprise/);
  });

  test('a metric rule fires once its threshold has been crossed for `for`, and resolves when the value is back', async (t) => {
    const hook = await receiver();
    let depth = 0;
    const gauge = definePlugin({
      name: 'test-gauge',
      version: '1.0.0',
      kernel: '^1',
      setup(ctx) {
        new Gauge({
          name: 'test_queue_depth',
          help: 'a gauge the test drives',
          labelNames: ['service', 'instance'],
          registers: [ctx.metrics],
          collect() {
            this.set({ service: 'notes', instance: 'alice' }, depth);
            this.set({ service: 'other', instance: 'bob' }, depth);
          },
        });
      },
    });
    const kernel = await createTestKernel({
      plugins: [...plugins, gauge],
      config: {
        settings: {
          alerts: {
            webhooks: [{ name: 'ops', url: hook.url, secret: SECRET }],
            rules: [{ name: 'deep-queue', metric: 'test_queue_depth', above: 10, for: '300ms', services: ['notes'] }],
            interval: '50ms',
          },
        },
      },
    });
    t.after(() => kernel.close());
    await sleep(300);
    assert.equal(hook.received.length, 0, 'nothing while under the threshold');
    const crossed = Date.now();
    depth = 50;
    await waitFor(() => hook.received.length >= 1, 'the firing alert', 30_000);
    assert.ok(Date.now() - crossed >= 300, 'not before `for` had passed');
    const firing = hook.received[0]!.body;
    assert.equal(firing.kind, 'firing');
    assert.equal(firing.rule, 'deep-queue');
    assert.equal(firing.instance, 'notes:alice', 'only the series of the rule\'s services');
    assert.deepEqual(firing.metric, { name: 'test_queue_depth', labels: { service: 'notes', instance: 'alice' }, value: 50, above: 10 });
    depth = 1;
    await waitFor(() => hook.received.length >= 2, 'the resolved alert', 30_000);
    assert.equal(hook.received[1]!.body.kind, 'resolved');
    assert.equal(hook.received[1]!.body.id, firing.id);
    await sleep(300);
    assert.equal(hook.received.length, 2);
  });

  test('restarts in a window: one alert to the webhooks the rule names, resolved once the window empties', async (t) => {
    const dir = projectDir('tenement-webhooks-restarts-');
    const app = crashApp(dir);
    const ops = await receiver();
    const other = await receiver();
    const kernel = await createTestKernel({
      plugins,
      config: {
        settings: {
          alerts: {
            webhooks: [
              { name: 'ops', url: ops.url, secret: SECRET },
              { name: 'other', url: other.url, secret: SECRET },
              { name: 'elsewhere', url: other.url, secret: SECRET, services: ['notes'] },
            ],
            rules: [{ on: 'restarts', count: 3, within: '1500ms', webhooks: ['ops', 'elsewhere'] }],
            interval: '50ms',
          },
        },
        services: { crashy: { command: `node ${app}`, maxRestarts: 4, backoff: { base: '20ms', max: '40ms' }, idleTimeout: false } },
      },
    });
    // One hook, closing before removing: the app writes into the folder (after-hooks stop at the first that throws).
    t.after(() => kernel.close().finally(() => rmSync(dir, { recursive: true, force: true })));
    await kernel.spawnInstance('crashy', 'a').catch(() => undefined);
    await waitFor(() => ops.received.length >= 2, 'firing then resolved', 30_000);
    const [firing, resolved] = ops.received;
    assert.equal(firing!.body.kind, 'firing');
    assert.match(String(firing!.body.summary), /crashy:a restarted 3 times within 1500ms/);
    assert.equal(resolved!.body.kind, 'resolved');
    assert.equal(resolved!.body.id, firing!.body.id);
    assert.equal(other.received.length, 0, "neither a webhook the rule does not name nor one for other services");
  });

  test('unhealthy for a duration: fires once the instance has not been healthy for `for`, resolves when it is', async (t) => {
    const hook = await receiver();
    const kernel = await createTestKernel({
      plugins: [...servePlugins, webhooksPlugin],
      config: {
        settings: {
          healthInterval: '100ms',
          alerts: { webhooks: [{ name: 'ops', url: hook.url, secret: SECRET }], rules: [{ on: 'unhealthy', for: '600ms' }], interval: '50ms' },
        },
        services: {
          echo: {
            command: `node ${ECHO_APP}`,
            idleTimeout: false,
            health: { path: '/health', failures: 2 },
            startupTimeout: '1s',
            maxRestarts: 100,
            backoff: { base: '50ms', max: '100ms' },
          },
        },
      },
    });
    t.after(() => kernel.close());
    const instance = await kernel.spawnInstance('echo', 'a');
    const marker = path.join(kernel.instanceDir('echo', 'a'), 'unhealthy');
    writeFileSync(marker, '');
    let unhealthyAt = 0;
    kernel.watchEvents((event) => {
      if (event.type === 'unhealthy' && unhealthyAt === 0) unhealthyAt = event.at;
    });
    await waitFor(() => hook.received.length >= 1, 'the unhealthy alert', 30_000);
    assert.ok(unhealthyAt > 0 && Date.now() - unhealthyAt >= 600, 'not before `for` had passed since the unhealthy notice');
    assert.equal(hook.received[0]!.body.kind, 'firing');
    assert.match(String(hook.received[0]!.body.summary), /echo:a has been unhealthy for/);
    rmSync(marker, { force: true });
    await waitFor(() => hook.received.length >= 2, 'the resolved alert', 30_000);
    assert.equal(hook.received[1]!.body.kind, 'resolved');
    assert.equal(instance.state, 'running');
    assert.equal(instance.health, 'healthy');
  });

  test('a wake that fails raises wake-failed, resolved once the instance runs again', async (t) => {
    const dir = projectDir('tenement-webhooks-wake-');
    const app = crashApp(dir);
    writeFileSync(path.join(dir, 'ok'), '');
    const hook = await receiver();
    const kernel = await createTestKernel({
      plugins: [...servePlugins, webhooksPlugin],
      config: {
        settings: { alerts: { webhooks: [{ name: 'ops', url: hook.url, secret: SECRET }], rules: [{ on: 'wake-failed' }], interval: '50ms' } },
        services: { crashy: { command: `node ${app}`, idleTimeout: false, maxRestarts: 1, backoff: { base: '20ms', max: '40ms' } } },
      },
    });
    // One hook, closing before removing: the app writes into the folder (after-hooks stop at the first that throws).
    t.after(() => kernel.close().finally(() => rmSync(dir, { recursive: true, force: true })));
    const instance = await kernel.spawnInstance('crashy', 'a');
    await kernel.hibernate(instance);
    rmSync(path.join(dir, 'ok'));
    const failed = await request(kernel, 'a.crashy.localhost', '/');
    assert.equal(failed.status, 503, failed.body);
    await waitFor(() => hook.received.length >= 1, 'the wake-failed alert', 30_000);
    assert.equal(hook.received[0]!.body.rule, 'wake-failed');
    assert.match(String(hook.received[0]!.body.summary), /crashy:a could not be woken/);
    writeFileSync(path.join(dir, 'ok'), '');
    await waitFor(() => instance.state === 'failed', 'the instance to give up', 30_000);
    await kernel.spawnInstance('crashy', 'a');
    await waitFor(() => hook.received.length >= 2, 'the resolved alert', 30_000);
    assert.match(String(hook.received[1]!.body.summary), /running again/);
    assert.equal(hook.received[1]!.body.kind, 'resolved');
    assert.equal(hook.received.length, 2);
  });

  test('oom: merged while OOM kills keep coming, resolved after a cool-down without one', async (t) => {
    const hook = await receiver();
    const kernel = await createTestKernel({
      plugins: [processRuntime, webhooksPlugin],
      config: {
        settings: { alerts: { webhooks: [{ name: 'ops', url: hook.url, secret: SECRET }], rules: [{ on: 'oom', cooldown: '700ms' }], interval: '50ms' } },
        services: { echo: { command: `node ${ECHO_APP}`, idleTimeout: false } },
      },
    });
    t.after(() => kernel.close());
    const instance = await kernel.spawnInstance('echo', 'a');
    // The notice the cgroups plugin emits when the kernel OOM-kills a process of the instance.
    kernel.emit(instance, 'oom', 'killed node (pid 1234)');
    await waitFor(() => hook.received.length >= 1, 'the oom alert', 30_000);
    kernel.emit(instance, 'oom', 'killed node (pid 1235)');
    await waitFor(() => hook.received.length >= 2, 'the resolved alert', 30_000);
    const [firing, resolved] = hook.received;
    assert.equal(firing!.body.kind, 'firing');
    assert.equal(firing!.body.detail, 'killed node (pid 1234)');
    assert.equal(resolved!.body.kind, 'resolved');
    assert.equal(resolved!.body.count, 2);
  });

  test('a delivery is given up after maxAttempts and counted; the metrics show outcomes and the outbox depth', async (t) => {
    const dir = projectDir('tenement-webhooks-giveup-');
    const app = crashApp(dir);
    const hook = await receiver();
    for (let i = 0; i < 5; i++) {
      hook.script.push((_req, res) => {
        res.statusCode = 503;
        res.end('down');
      });
    }
    const kernel = await createTestKernel({
      plugins,
      config: {
        settings: {
          alerts: {
            webhooks: [{ name: 'ops', url: hook.url, secret: SECRET }],
            rules: [{ on: 'failed' }],
            interval: '50ms',
            delivery: { maxAttempts: 2, backoff: { base: '50ms', max: '100ms' } },
          },
        },
        services: { crashy: { command: `node ${app}`, restart: 'never', idleTimeout: false } },
      },
    });
    // One hook, closing before removing: the app writes into the folder (after-hooks stop at the first that throws).
    t.after(() => kernel.close().finally(() => rmSync(dir, { recursive: true, force: true })));
    await kernel.spawnInstance('crashy', 'a').catch(() => undefined);
    const metric = async (name: string): Promise<string> => (await kernel.metricsRegistry.getSingleMetricAsString(name)) ?? '';
    await waitFor(async () => /outcome="failed"} 1/.test(await metric('tenement_alert_deliveries_total')), 'the delivery given up', 30_000);
    assert.equal(hook.received.length, 2);
    assert.match(await metric('tenement_alert_deliveries_total'), /outcome="retried"} 1/);
    assert.match(await metric('tenement_alert_deliveries_total'), /outcome="delivered"} 0/);
    assert.match(await metric('tenement_alert_outbox_depth'), /tenement_alert_outbox_depth 0/);
    assert.match(await metric('tenement_alerts_total'), /rule="failed",kind="firing"} 1/);
  });

  test('the outbox is bounded: finished rows make room, and when every row is pending a new one is refused', () => {
    const dir = projectDir('tenement-webhooks-outbox-');
    const store = new Store(path.join(dir, 'tenement.db'));
    try {
      const outbox = new Outbox({ db: store.db, migrate: (steps) => store.migrateOwner('webhooks', steps) }, 10);
      const row = (n: number) => ({ alert: `alt_${n}`, webhook: 'ops', kind: 'firing' as const, rule: 'failed', service: 's', instance: `s:${n}`, summary: 'x', body: '{}' });
      for (let n = 0; n < 10; n++) assert.ok(outbox.add(row(n)));
      assert.equal(outbox.add(row(10)), false, 'full of pending rows: refused');
      const [oldest] = outbox.list({ limit: 1000 }).reverse();
      outbox.markDelivered(oldest!.id, 200, Date.now());
      assert.ok(outbox.add(row(11)), 'a delivered row made room');
      const rows = outbox.list({ limit: 1000 });
      assert.equal(rows.length, 10);
      assert.ok(!rows.some((r) => r.alert === 'alt_0'), 'the delivered row was pruned');
      assert.equal(outbox.pendingCount(), 10);
    } finally {
      store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** Storage rules need the storage plugin's real loop-mounted ext4 images. */
function storageSkip(): string | false {
  if (process.getuid?.() !== 0) return 'needs root (loop mounts)';
  if (!existsSync('/dev/loop-control')) return 'needs loop devices (/dev/loop-control)';
  for (const tool of ['mkfs.ext4', 'resize2fs', 'e2fsck', 'losetup']) if (!onPath(tool)) return `needs ${tool} (apt-get install e2fsprogs util-linux)`;
  return false;
}

/** A data dir whose mounts and loop devices `undoScratch` undoes (the storage plugin keeps mounts at shutdown on purpose). */
function scratchDataDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'tenement-webhooks-storage-'));
}

describe('alert webhooks on storage', { skip: storageSkip(), timeout: 120_000 }, () => {
  test('storage above a share of the limit fires, and resolves when the data is deleted', async (t) => {
    const dataDir = scratchDataDir();
    const hook = await receiver();
    const kernel = await createTestKernel({
      plugins: [...servePlugins, storagePlugin, webhooksPlugin],
      config: {
        settings: {
          dataDir,
          alerts: { webhooks: [{ name: 'ops', url: hook.url, secret: SECRET }], rules: [{ on: 'storage', above: 0.5 }], interval: '50ms' },
        },
        services: { echo: { command: `node ${ECHO_APP}`, idleTimeout: false, limits: { storage: '32MiB' } } },
        pluginOptions: { storage: { pollInterval: '50ms', gcInterval: false } },
      },
    });
    // One hook, stopping before unmounting and removing: the kernel writes into the folder (after-hooks stop at the
    // first that throws).
    t.after(() => kernel.stop().finally(() => removeScratchDataDir(dataDir)));
    await kernel.spawnInstance('echo', 'a');
    await sleep(300);
    assert.equal(hook.received.length, 0, 'an empty DATA_DIR is under the threshold');
    const file = path.join(kernel.instanceDir('echo', 'a'), 'big.bin');
    writeFileSync(file, Buffer.alloc(20 * 1024 * 1024, 1));
    await waitFor(() => hook.received.length >= 1, 'the storage alert', 30_000);
    assert.equal(hook.received[0]!.body.kind, 'firing');
    assert.match(String(hook.received[0]!.body.summary), /echo:a storage is at \d+(\.\d)?% of its limit/);
    rmSync(file);
    await waitFor(() => hook.received.length >= 2, 'the resolved alert', 30_000);
    assert.equal(hook.received[1]!.body.kind, 'resolved');
    assert.match(String(hook.received[1]!.body.summary), /back under 50%/);
  });
});
