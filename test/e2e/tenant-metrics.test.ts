// Tenant metrics end to end: real instances serving their own /metrics (test/fixtures/metrics-app.mjs), scraped
// by the tenant-metrics plugin and re-exposed on Tenement's /metrics, checked by promtool; the per-instance API
// with tenant tokens; and hostile tenants: 100,000 series, a hanging endpoint, garbage, a 50 MB body, labels
// named like Tenement's, and an instance that hibernates.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test, type TestContext } from 'node:test';
import type { ServiceInput } from '../../core/config/schema.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import authBearer from '../../plugins/auth-bearer/index.ts';
import instancesApi from '../../plugins/instances-api/index.ts';
import metrics from '../../plugins/metrics/index.ts';
import tenantMetrics from '../../plugins/tenant-metrics/index.ts';
import { ADMIN, staticAuth, tenant } from '../fixtures/static-auth.ts';
import { FIXTURES, ROOT, alive, request, servePlugins, sleep, waitFor } from '../helpers.ts';

const METRICS_APP = path.join(FIXTURES, 'metrics-app.mjs');
const promtoolMissing = spawnSync('promtool', ['--version']).error !== undefined;
const NEEDS_PROMTOOL = promtoolMissing ? 'needs promtool (apt-get install prometheus)' : false;

function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a text exposition (comments skipped); label values unescaped. */
function parse(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(match, `unparseable sample line: ${line}`);
    const labels: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [, name, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[name!] = value!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    samples.push({ name: match[1]!, labels, value: Number(match[3] === 'Nan' ? 'NaN' : match[3]) });
  }
  return samples;
}

function value(samples: Sample[], name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels);
  const found = samples.filter((s) => s.name === name && Object.keys(s.labels).length === wanted.length && wanted.every(([k, v]) => s.labels[k] === v));
  assert.ok(found.length <= 1, `${name} ${JSON.stringify(labels)} appears ${found.length} times`);
  return found[0]?.value;
}

async function scrape(kernel: TestKernel, url = '/metrics', headers: Record<string, string> = {}, timeoutMs = 30_000): Promise<{ text: string; samples: Sample[] }> {
  const reply = await request(kernel, 'localhost', url, { headers, timeoutMs });
  assert.equal(reply.status, 200, reply.body);
  return { text: reply.body, samples: parse(reply.body) };
}

interface ApiAnswer {
  service: string;
  instance: string;
  state: string;
  configured: boolean;
  up: boolean | null;
  scrapedAt: string | null;
  lastError: string | null;
  series: number;
  dropped: Record<string, number> | null;
  samples: Array<{ name: string; labels: Record<string, string>; value: number | string; type: string; help: string | null; scrapedAt: string }>;
}

async function instanceMetrics(kernel: TestKernel, service: string, id: string, headers: Record<string, string> = ADMIN): Promise<ApiAnswer> {
  const reply = await request(kernel, 'localhost', `/api/instances/${service}/${id}/metrics`, { headers });
  assert.equal(reply.status, 200, reply.body);
  return JSON.parse(reply.body) as ApiAnswer;
}

const app = (metricsOptions: Record<string, unknown>, overrides: Partial<ServiceInput> = {}): ServiceInput => ({
  command: `node ${METRICS_APP}`,
  health: '/health',
  metrics: { path: '/metrics', interval: 200, ...metricsOptions },
  ...overrides,
});

/** A kernel with the serve plugins, static auth, the instances API, metrics and tenant metrics; processes reaped. */
async function tenantKernel(t: TestContext, services: Record<string, ServiceInput>, instances: Record<string, string[]>): Promise<{ kernel: TestKernel; spawns: Map<string, number> }> {
  const kernel = await createTestKernel({ plugins: [...servePlugins, staticAuth, authBearer, instancesApi, metrics, tenantMetrics], config: { services, instances } });
  const pids: number[] = [];
  const spawns = new Map<string, number>();
  kernel.hooks.stateChange.tap('test-pids', (event) => {
    if (event.type !== 'spawned') return;
    spawns.set(event.instance, (spawns.get(event.instance) ?? 0) + 1);
    const pid = /pid (\d+)/.exec(event.reason ?? '')?.[1];
    if (pid) pids.push(Number(pid));
  });
  t.after(async () => {
    await kernel.close();
    await waitFor(() => pids.every((pid) => !alive(pid)), `spawned processes ${pids.join(', ')} to be gone`, 15_000);
  });
  return { kernel, spawns };
}

const allRunning = (kernel: TestKernel) => () => kernel.instances.list().length > 0 && kernel.instances.list().every((i) => i.state === 'running');

test('tenant samples are re-exposed as tenant_* with service and instance, pass promtool, and answer in the API', { timeout: 120_000 }, async (t) => {
  const { kernel } = await tenantKernel(t, { app: app({}) }, { app: ['alice', 'bob'] });
  await waitFor(allRunning(kernel), 'alice and bob to run', 30_000);
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'bob')).up === true, "bob's first scrape", 30_000);
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'alice')).up === true, "alice's first scrape", 30_000);

  const { text, samples } = await scrape(kernel);
  const labels = (id: string, extra: Record<string, string> = {}) => ({ service: 'app', instance: `app:${id}`, ...extra });
  assert.ok(value(samples, 'tenant_app_requests_total', labels('alice', { method: 'get', path: '/' }))! >= 1, 'the counter of scrapes');
  assert.equal(value(samples, 'tenant_app_requests_total', labels('bob', { method: 'post', path: '/items' })), 3);
  assert.equal(value(samples, 'tenant_app_queue_depth', labels('alice', { tenant: 'alice' })), 7.5, 'the timestamp is left out');
  assert.equal(value(samples, 'tenant_app_latency_seconds_bucket', labels('alice', { le: '+Inf' })), 3);
  assert.equal(value(samples, 'tenant_app_latency_seconds_count', labels('bob')), 3);
  assert.equal(value(samples, 'tenant_app_size_bytes', labels('bob', { quantile: '0.99' })), 900);
  assert.ok(Number.isNaN(value(samples, 'tenant_app_odd_values', labels('alice', { kind: 'nan' }))!));
  assert.equal(value(samples, 'tenant_app_label_text', labels('alice', { text: 'a "quoted" \\ line\nbreak' })), 1);
  assert.match(text, /^# TYPE tenant_app_latency_seconds histogram$/m);
  assert.match(text, /^# HELP tenant_app_requests_total Requests the app served\.$/m);
  assert.equal(text.match(/^# TYPE tenant_app_requests_total /gm)?.length, 1, 'one family for both instances');
  assert.equal(value(samples, 'tenement_tenant_metrics_up', labels('alice')), 1);
  assert.equal(value(samples, 'tenement_tenant_metrics_series', labels('alice')), 16);

  await t.test('promtool check metrics accepts the whole exposition', { skip: NEEDS_PROMTOOL }, async () => {
    const checked = await promtoolCheck(text);
    assert.equal(checked.code, 0, checked.output);
  });

  // The API: the instance's own samples, JSON-safe values, for the admin and for the tenant itself.
  const mine = await instanceMetrics(kernel, 'app', 'alice', tenant('alice'));
  assert.equal(mine.instance, 'app:alice');
  assert.equal(mine.configured, true);
  assert.equal(mine.series, 16);
  const odd = mine.samples.filter((s) => s.name === 'tenant_app_odd_values').map((s) => [s.labels['kind'], s.value]);
  assert.deepEqual(odd, [['nan', 'NaN'], ['inf', '+Inf'], ['escaped', -1500]]);
  const bucket = mine.samples.find((s) => s.name === 'tenant_app_latency_seconds_bucket' && s.labels['le'] === '1');
  assert.deepEqual({ ...bucket, scrapedAt: undefined }, { name: 'tenant_app_latency_seconds_bucket', labels: { le: '1' }, value: 2, type: 'histogram', help: 'Request latency.', scrapedAt: undefined });
  assert.ok(Date.parse(mine.scrapedAt!) > 0);

  // Another tenant's metrics answer exactly what a missing instance does; so does a name that is not one.
  for (const [url, headers] of [
    ['/api/instances/app/alice/metrics', tenant('bob')],
    ['/api/instances/app/carol/metrics', tenant('carol')],
    ['/api/instances/app/nobody/metrics', ADMIN],
  ] as const) {
    const reply = await request(kernel, 'localhost', url, { headers });
    assert.equal(reply.status, 404, `${url}: ${reply.body}`);
    assert.equal(JSON.parse(reply.body).error.code, 'TNM_ERR_UNKNOWN_INSTANCE');
  }
  const bad = await request(kernel, 'localhost', '/api/instances/app/__proto__/metrics', { headers: ADMIN });
  assert.equal(bad.status, 400, bad.body);
  assert.equal((await request(kernel, 'localhost', '/api/instances/app/alice/metrics')).status, 401);

  // /api/metrics with a tenant token: its own tenant_ series come along, nobody else's.
  const aliceView = await scrape(kernel, '/api/metrics', tenant('alice'));
  assert.ok(value(aliceView.samples, 'tenant_app_queue_depth', labels('alice', { tenant: 'alice' })) === 7.5);
  assert.doesNotMatch(aliceView.text, /bob/);

  await t.test('ten metrics prints them', async () => {
    const token = readFileSync(path.join(kernel.config.settings.dataDir, 'admin.token'), 'utf8').trim();
    const ten = (args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const env = { ...process.env, NO_COLOR: '1', TENEMENT_SERVER: kernel.url, TENEMENT_TOKEN: token };
        execFile(process.execPath, [path.join(ROOT, 'bin', 'ten.mjs'), ...args], { timeout: 60_000, env }, (error, stdout, stderr) =>
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr }),
        );
      });
    const text = await ten(['metrics', 'app:alice']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^app:alice running, scraped .*, 16 series$/m);
    assert.match(text.stdout, /^tenant_app_queue_depth +\{tenant="alice"\} +7\.5 +gauge$/m);
    const json = await ten(['metrics', 'app:alice', '--json']);
    assert.equal(json.code, 0, json.stderr);
    assert.equal((JSON.parse(json.stdout) as ApiAnswer).series, 16);
    const missing = await ten(['metrics', 'app:nobody']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /TNM_ERR_UNKNOWN_INSTANCE|unknown instance/);
  });

  // A removed instance takes its series and its counters with it.
  await kernel.removeInstance(kernel.instances.get('app', 'bob')!);
  const after = await scrape(kernel);
  assert.deepEqual(after.samples.filter((s) => s.labels['instance'] === 'app:bob'), []);
  assert.ok(value(after.samples, 'tenant_app_requests_total', labels('alice', { method: 'post', path: '/items' })) === 3);
});

test("a tenant's own service and instance labels are kept as exported_*, reserved ones dropped, a type clash left out", { timeout: 120_000 }, async (t) => {
  const { kernel } = await tenantKernel(t, { app: app({}) }, { app: ['alice'] });
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'alice')).up === true, "alice's first scrape", 30_000);
  // Alice's app_requests_total (a counter) is exposed first; spoof serves the same name as a gauge.
  await kernel.spawnInstance('app', 'spoof');
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'spoof')).up === true, "spoof's first scrape", 30_000);

  const { text, samples } = await scrape(kernel);
  const spoofed = samples.filter((s) => s.name === 'tenant_spoof_a');
  const expected: Array<Record<string, string>> = [
    { service: 'app', instance: 'app:spoof', exported_instance: 'other:victim', exported_service: 'other' },
    { service: 'app', instance: 'app:spoof', constructor: 'c', prototype: 'p' },
  ];
  assert.deepEqual(spoofed.map((s) => ({ ...s.labels })), expected);
  assert.ok(!samples.some((s) => s.labels['instance'] !== undefined && s.labels['instance'] !== 'app:spoof' && s.labels['instance'] !== 'app:alice'), 'no sample claims another instance');
  assert.doesNotMatch(text, /__proto__|polluted/);
  assert.equal(value(samples, 'tenement_tenant_metrics_dropped_total', { service: 'app', instance: 'app:spoof', reason: 'invalid' })! % 2, 0, 'two dropped per scrape');
  assert.ok(value(samples, 'tenement_tenant_metrics_dropped_total', { service: 'app', instance: 'app:spoof', reason: 'invalid' })! >= 2);
  assert.ok(value(samples, 'tenement_tenant_metrics_dropped_total', { service: 'app', instance: 'app:spoof', reason: 'conflict' })! >= 1);
  assert.equal(value(samples, 'tenant_app_requests_total', { service: 'app', instance: 'app:spoof' }), undefined, "the gauge is left out of alice's counter family");
  assert.ok(value(samples, 'tenant_app_requests_total', { service: 'app', instance: 'app:alice', method: 'get', path: '/' })! >= 1);
  assert.equal(Object.getPrototypeOf({}), Object.prototype);

  // In its own API view the clashing gauge is still there: the conflict is about the shared exposition only.
  const own = await instanceMetrics(kernel, 'app', 'spoof', tenant('spoof'));
  assert.deepEqual(
    own.samples.filter((s) => s.name === 'tenant_app_requests_total').map((s) => [s.type, s.value]),
    [['gauge', 99]],
  );

  await t.test('promtool still accepts the exposition', { skip: NEEDS_PROMTOOL }, async () => {
    const checked = await promtoolCheck(text);
    assert.equal(checked.code, 0, checked.output);
  });
});

test('hostile endpoints: 100,000 series are capped, a hang, garbage and 50 MB fail alone; /metrics never waits', { timeout: 180_000 }, async (t) => {
  const { kernel } = await tenantKernel(
    t,
    {
      app: app({ timeout: '10s', maxSeries: 1000 }),
      // Its scrape never finishes within the test: if Tenement's /metrics waited for it, every scrape below would time out.
      stuck: app({ timeout: '10m' }),
    },
    { app: ['alice', 'flood', 'garbage', 'huge'], stuck: ['hang'] },
  );
  await waitFor(allRunning(kernel), 'every instance to run', 60_000);
  const failures = async (id: string, reason: string) =>
    value((await scrape(kernel, '/metrics', {}, 10_000)).samples, 'tenement_tenant_metrics_scrape_failures_total', { service: 'app', instance: `app:${id}`, reason }) ?? 0;
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'flood')).up === true, "flood's first scrape", 60_000);
  await waitFor(async () => (await failures('garbage', 'parse')) >= 1, 'garbage to fail as parse', 60_000);
  await waitFor(async () => (await failures('huge', 'too_large')) >= 1, 'the 50 MB body to fail as too_large', 60_000);
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'alice')).up === true, 'alice to be scraped', 60_000);

  // The hanging scrape is in flight the whole time (10 minutes of timeout); /metrics answers meanwhile.
  const hang = kernel.instances.get('stuck', 'hang')!;
  const hangScrapes = async () => Number((await request(`http://${hang.handle!.address.host}:${hang.handle!.address.port}`, 'localhost', '/scrapes')).body);
  await waitFor(async () => (await hangScrapes()) >= 1, 'the hanging endpoint to be asked', 30_000);

  const timings: number[] = [];
  let last: { text: string; samples: Sample[] } | null = null;
  for (let i = 0; i < 5; i++) {
    const started = performance.now();
    last = await scrape(kernel, '/metrics', {}, 10_000);
    timings.push(performance.now() - started);
  }
  t.diagnostic(`Tenement /metrics with 1,000 flood series kept and a hanging tenant: ${timings.map((ms) => ms.toFixed(1)).join(', ')} ms`);
  const { samples, text } = last!;
  assert.equal(await hangScrapes(), 1, 'one scrape at a time per instance: the hung one is not piled on');
  assert.equal((await instanceMetrics(kernel, 'stuck', 'hang')).up, null, 'still waiting for its first answer');

  assert.equal(samples.filter((s) => s.name === 'tenant_flood_series').length, 1000, 'capped at maxSeries');
  assert.equal(value(samples, 'tenement_tenant_metrics_series', { service: 'app', instance: 'app:flood' }), 1000);
  const dropped = value(samples, 'tenement_tenant_metrics_dropped_total', { service: 'app', instance: 'app:flood', reason: 'limit' })!;
  assert.ok(dropped >= 99_000 && dropped % 99_000 === 0, `99,000 dropped per scrape, got ${dropped}`);
  assert.equal(value(samples, 'tenement_tenant_metrics_up', { service: 'app', instance: 'app:garbage' }), 0);
  assert.equal(value(samples, 'tenement_tenant_metrics_up', { service: 'app', instance: 'app:huge' }), 0);
  assert.ok(!samples.some((s) => s.labels['instance'] === 'app:garbage' && s.name.startsWith('tenant_')));
  assert.ok(value(samples, 'tenant_app_queue_depth', { service: 'app', instance: 'app:alice', tenant: 'alice' }) === 7.5, 'the well-behaved tenant is unaffected');
  const garbage = await instanceMetrics(kernel, 'app', 'garbage');
  assert.match(garbage.lastError!, /^parse: /);
  assert.deepEqual(garbage.samples, []);
  assert.match((await instanceMetrics(kernel, 'app', 'huge')).lastError!, /^too_large: /);

  // Nothing crashed: every tenant still runs, and the proxy still serves them.
  assert.ok(allRunning(kernel)(), 'every instance still runs');
  assert.equal((await request(kernel, 'alice.app.localhost', '/health')).status, 200);

  await t.test('promtool accepts the exposition with the flood in it', { skip: NEEDS_PROMTOOL }, async () => {
    const checked = await promtoolCheck(text);
    assert.equal(checked.code, 0, checked.output);
  });
});

test('a hibernated instance is never woken to be scraped; its series leave /metrics until it runs again', { timeout: 120_000 }, async (t) => {
  // Scraped every 100ms, idle after 1.5s: scrapes are not traffic, so it goes to sleep anyway.
  const { kernel, spawns } = await tenantKernel(t, { app: app({ interval: 100 }, { idleTimeout: '1500ms' }) }, { app: ['alice'] });
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'alice')).up === true, "alice's first scrape", 30_000);
  const alice = kernel.instances.get('app', 'alice')!;
  await waitFor(() => alice.state === 'hibernated', 'alice to hibernate although she is scraped', 30_000);
  assert.equal(spawns.get('app:alice'), 1);

  const asleep = await scrape(kernel);
  assert.ok(!asleep.samples.some((s) => s.name.startsWith('tenant_')), 'no tenant series while asleep');
  assert.ok(!asleep.samples.some((s) => s.name === 'tenement_tenant_metrics_series' && s.labels['instance'] === 'app:alice' && s.value > 0));
  const api = await instanceMetrics(kernel, 'app', 'alice', tenant('alice'));
  assert.equal(api.state, 'hibernated');
  assert.deepEqual(api.samples, []);

  // Ten intervals later she still sleeps: nothing scraped her.
  await sleep(1_000);
  assert.equal(alice.state, 'hibernated');
  assert.equal(spawns.get('app:alice'), 1, 'never started again for a scrape');

  // A real request wakes her; the next scrape brings her series back.
  assert.equal((await request(kernel, 'alice.app.localhost', '/health')).status, 200);
  await waitFor(async () => value((await scrape(kernel)).samples, 'tenant_app_queue_depth', { service: 'app', instance: 'app:alice', tenant: 'alice' }) === 7.5, 'her series to return', 30_000);
  assert.equal(spawns.get('app:alice'), 2);
});

function jcoMissing(): string | false {
  try {
    import.meta.resolve('@bytecodealliance/jco');
    return false;
  } catch {
    return 'needs @bytecodealliance/jco (npm install: it is a devDependency)';
  }
}

test('a wasm function publishes its own metrics through the SDK host call; they are re-exposed the same way', { skip: jcoMissing(), timeout: 300_000 }, async (t) => {
  const { buildComponent } = await import('../../core/wasm/component/build.ts');
  const { default: wasmRuntime } = await import('../../runtimes/wasm/index.ts');
  const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-tenant-metrics-wasm-'));
  const module = path.join(work, 'metrics-fn.wasm');
  await buildComponent({ source: path.join(FIXTURES, 'wasm-metrics', 'metrics-fn.ts'), out: module });
  const kernel = await createTestKernel({
    plugins: [...servePlugins, wasmRuntime, staticAuth, instancesApi, metrics, tenantMetrics],
    config: {
      settings: { dataDir: path.join(work, 'data') },
      services: { fn: { isolation: 'wasm', module, startupTimeout: '60s', metrics: { path: '/metrics', interval: 100 } } },
      instances: { fn: ['alice', 'bob'] },
    },
  });
  // One hook, closing before removing: the kernel writes into the folder (after-hooks stop at the first that throws).
  t.after(() => kernel.close().finally(() => rmSync(work, { recursive: true, force: true })));

  const call = (tenantId: string, target: string) => request(kernel, `${tenantId}.fn.localhost`, target);
  // The first start transpiles the component: seconds on a loaded machine.
  await waitFor(allRunning(kernel), 'alice and bob to run', 120_000);
  assert.equal((await call('alice', '/order?plan=pro')).status, 204);
  assert.equal((await call('alice', '/order?plan=pro')).status, 204);
  assert.equal((await call('alice', '/order?plan=free')).status, 204);
  assert.equal((await call('bob', '/order?plan=pro')).status, 204);
  assert.equal((await call('alice', '/spoof')).status, 204);
  for (const [target, reason] of [
    ['/proto', /invalid label name "__proto__"/],
    ['/bad-name', /invalid metric name "1 bad"/],
    ['/negative', /a counter only goes up/],
  ] as const) {
    const reply = await call('alice', target);
    assert.equal(reply.status, 400, `${target}: ${reply.body}`);
    assert.match(reply.body, reason);
  }

  const fn = (id: string, extra: Record<string, string> = {}) => ({ service: 'fn', instance: `fn:${id}`, ...extra });
  await waitFor(async () => value((await scrape(kernel)).samples, 'tenant_orders_total', fn('bob', { plan: 'pro' })) === 1, "bob's published counter", 30_000);
  await waitFor(async () => value((await scrape(kernel)).samples, 'tenant_orders_total', fn('alice', { plan: 'pro' })) === 2, "alice's published counter", 30_000);
  // A scrape taken between alice's second order and her /spoof already shows 2 orders: wait for the last thing she
  // published (the refused calls after it publish nothing).
  const spoofed = fn('alice', { exported_service: 'other', exported_instance: 'other:victim' });
  await waitFor(async () => value((await scrape(kernel)).samples, 'tenant_spoof', spoofed) === 1, "alice's last published gauge", 30_000);
  const { text, samples } = await scrape(kernel);
  assert.equal(value(samples, 'tenant_orders_total', fn('alice', { plan: 'free' })), 1, 'the refused negative increment changed nothing');
  assert.equal(value(samples, 'tenant_cart_items', fn('alice', { plan: 'pro' })), 3);
  assert.equal(value(samples, 'tenant_spoof', spoofed), 1);
  assert.match(text, /^# TYPE tenant_orders_total counter$/m);
  assert.match(text, /^# TYPE tenant_cart_items gauge$/m);
  assert.ok(!samples.some((s) => s.name.startsWith('tenant_1')));

  const api = await instanceMetrics(kernel, 'fn', 'alice', tenant('alice'));
  assert.deepEqual(
    api.samples.filter((s) => s.name === 'tenant_orders_total').map((s) => [s.labels['plan'], s.value, s.type]),
    [['pro', 2, 'counter'], ['free', 1, 'counter']],
  );
  assert.equal((await request(kernel, 'localhost', '/api/instances/fn/alice/metrics', { headers: tenant('bob') })).status, 404);

  await t.test('promtool accepts it', { skip: NEEDS_PROMTOOL }, async () => {
    const checked = await promtoolCheck(text);
    assert.equal(checked.code, 0, checked.output);
  });

  // Hibernation ends the run: its series leave /metrics, and the woken instance counts from zero.
  await kernel.hibernate(kernel.instances.get('fn', 'alice')!);
  assert.ok(!(await scrape(kernel)).samples.some((s) => s.labels['instance'] === 'fn:alice' && s.name.startsWith('tenant_')));
  assert.equal((await call('alice', '/order?plan=pro')).status, 204);
  await waitFor(async () => value((await scrape(kernel)).samples, 'tenant_orders_total', fn('alice', { plan: 'pro' })) === 1, 'the counter to start again', 30_000);
});

test('a config reload that takes a service’s metrics away takes its series away; one that adds them starts scraping', { timeout: 120_000 }, async (t) => {
  const { resolveConfig } = await import('../../core/config/loader.ts');
  const { kernel } = await tenantKernel(t, { app: app({ interval: 100 }) }, { app: ['alice'] });
  await waitFor(async () => (await instanceMetrics(kernel, 'app', 'alice')).up === true, "alice's first scrape", 30_000);
  const settings = { ...kernel.config.settings };
  const reload = (service: ServiceInput) =>
    kernel.reload(resolveConfig({ settings, services: { app: service }, instances: { app: ['alice'] } }, { path: null, dir: process.cwd() }));
  const { metrics: _off, ...withoutMetrics } = app({});
  await reload(withoutMetrics);
  // Taken away on the scraper's next tick.
  await waitFor(
    async () => !(await scrape(kernel)).samples.some((s) => s.name.startsWith('tenant_') || s.name.startsWith('tenement_tenant_metrics_')),
    'nothing left of it',
    30_000,
  );
  assert.equal((await instanceMetrics(kernel, 'app', 'alice')).configured, false);
  await reload(app({ interval: 100 }));
  await waitFor(async () => value((await scrape(kernel)).samples, 'tenant_app_queue_depth', { service: 'app', instance: 'app:alice', tenant: 'alice' }) === 7.5, 'scraping again', 30_000);
});
