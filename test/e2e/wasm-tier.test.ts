// The wasm tier end to end: C guests (WASI preview 1, CGI) built with clang, served through a real kernel and
// its proxy, running in the shared worker pool.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import { sharedWasmPool } from '../../core/wasm/shared.ts';
import cgroups from '../../plugins/cgroups/index.ts';
import metrics from '../../plugins/metrics/index.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import { ROOT, request, servePlugins, waitFor, type Reply } from '../helpers.ts';
import { buildCGuests, wasmFunction } from '../wasm-guests.ts';
import { ENGINES } from '../../core/wasm/engine.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasm-'));
const { handler: HANDLER, guest: GUEST, skip } = buildCGuests(work);

const HOST_SECRET = 'TENEMENT_WASM_TEST_SECRET';
const hostFile = path.join(work, 'host-secret.txt');
writeFileSync(hostFile, 'not for guests\n');

/** Why an engine cannot run here (null: it can): wasmtime needs its library (`npm run fetch:wasmtime`). */
export function engineSkip(engine: string): string | false {
  if (engine !== 'wasmtime') return false;
  const status = wasmtimeStatus();
  return status.usable ? false : status.reason;
}

// Every test of this block runs on both engines, chosen as the runtime's default engine.
for (const engine of ENGINES) describe(`wasm tier on ${engine}`, { skip: skip || engineSkip(engine) }, () => {
  let kernel: TestKernel;
  before(async () => {
    process.env[HOST_SECRET] = 'hunter2';
    kernel = await createTestKernel({
      // cgroups: a wasm service's limits.memory is its guest cap, not something for the cgroups plugin to refuse.
      plugins: [...servePlugins, wasmRuntime, cgroups, metrics],
      config: {
        pluginOptions: { 'runtime-wasm': { engine } },
        services: {
          hello: wasmFunction(HANDLER),
          spin: wasmFunction(GUEST, { wasm: { timeout: '300ms' } }),
          bomb: wasmFunction(GUEST, { limits: { memory: '16MB' } }),
          guest: wasmFunction(GUEST, { env: { PROBE_FILE: hostFile, GREETING: 'hi' } }),
          sock: wasmFunction(HANDLER, { listen: 'socket' }),
          tight: wasmFunction(GUEST, { wasm: { timeout: '2s', maxQueue: 1 } }),
        },
      },
    });
  });
  after(async () => {
    delete process.env[HOST_SECRET];
    await kernel?.close();
  });

  test('serves a C function over HTTP through the proxy, with its stderr in the instance logs', async () => {
    const reply = await request(kernel, 'alice.hello.localhost', '/?x=1');
    assert.equal(reply.status, 200, reply.body);
    assert.equal(reply.headers['content-type'], 'text/plain');
    assert.equal(reply.body, 'Hello from C, alice! (GET /?x=1)\n');

    const payload = Buffer.from('{"ping":true}');
    const echo = await request(kernel, 'alice.hello.localhost', '/echo', { method: 'POST', body: payload, headers: { 'content-type': 'application/json' } });
    assert.equal(echo.status, 200, echo.body);
    assert.equal(echo.headers['content-type'], 'application/json');
    assert.equal(echo.body, payload.toString());

    const missing = await request(kernel, 'alice.hello.localhost', '/nope');
    assert.equal(missing.status, 404);

    const instance = kernel.instances.get('hello', 'alice')!;
    assert.equal(instance.tier, 'wasm');
    assert.equal(instance.handle?.pid, null);
    const lines = instance.logs.query().map((entry) => `${entry.stream}: ${entry.line}`);
    assert.ok(lines.includes('stderr: POST /echo'), lines.join('\n'));
  });

  test("listen: 'socket' serves the function on a Unix socket in DATA_DIR", async () => {
    const reply = await request(kernel, 'alice.sock.localhost', '/');
    assert.equal(reply.status, 200, reply.body);
    assert.equal(kernel.instances.get('sock', 'alice')!.handle?.address.socketPath, path.join(kernel.instanceDir('sock', 'alice'), 'app.sock'));
  });

  test('each tenant keeps its own data in its own DATA_DIR', async () => {
    const visit = async (tenant: string) => JSON.parse((await request(kernel, `${tenant}.hello.localhost`, '/visits')).body) as { tenant: string; visits: number };
    assert.deepEqual(await visit('carol'), { tenant: 'carol', visits: 1 });
    assert.deepEqual(await visit('carol'), { tenant: 'carol', visits: 2 });
    assert.deepEqual(await visit('dave'), { tenant: 'dave', visits: 1 });
    assert.equal(readFileSync(path.join(kernel.instanceDir('hello', 'carol'), 'visits'), 'utf8'), '2\n');
    assert.equal(readFileSync(path.join(kernel.instanceDir('hello', 'dave'), 'visits'), 'utf8'), '1\n');
  });

  test('an infinite loop is cut off at its deadline while other functions keep answering', async () => {
    const looping = request(kernel, 'alice.spin.localhost', '/loop');
    // While one worker spins, the others (and the replacement) serve everyone else.
    const others = await Promise.all(Array.from({ length: 6 }, (_, i) => request(kernel, `loop${i}.hello.localhost`, '/')));
    for (const reply of others) assert.equal(reply.status, 200, reply.body);
    const cut = await looping;
    assert.equal(cut.status, 504, cut.body);
    const lines = kernel.instances.get('spin', 'alice')!.logs.query().map((entry) => entry.line);
    assert.ok(lines.some((line) => line.includes('GET /loop: timeout: deadline of 300ms passed')), lines.join('\n'));
    // The pool is whole again: the same function answers its next request.
    assert.equal((await request(kernel, 'alice.spin.localhost', '/ok')).body, 'ok\n');
  });

  test('an instance with more requests in the pool than wasm.maxQueue answers 503 at once', async () => {
    const looping = request(kernel, 'alice.tight.localhost', '/loop');
    let overloaded: Reply | null = null;
    // The loop holds the instance's one slot until its deadline: a request meanwhile is refused, not queued.
    for (let attempt = 0; attempt < 100 && !overloaded; attempt++) {
      const reply = await request(kernel, 'alice.tight.localhost', '/ok');
      if (reply.status === 503) overloaded = reply;
    }
    assert.ok(overloaded, 'no request was refused while the loop held the slot');
    assert.equal((await looping).status, 504);
    assert.equal((await request(kernel, 'alice.tight.localhost', '/ok')).status, 200);
  });

  test('a memory bomb traps at its cap and the pool keeps serving', async () => {
    const bomb = await request(kernel, 'alice.bomb.localhost', '/bomb');
    assert.equal(bomb.status, 500, bomb.body);
    const lines = kernel.instances.get('bomb', 'alice')!.logs.query().map((entry) => entry.line);
    const failed = lines.find((line) => line.startsWith('malloc failed after'));
    assert.ok(failed, lines.join('\n'));
    // 16 MiB cap: the guest got at most 16 one-MiB blocks (less its own start-up memory).
    assert.ok(Number(/after (\d+) MiB/.exec(failed)![1]) <= 16, failed);
    assert.ok(lines.some((line) => line.includes('GET /bomb: out-of-memory')), lines.join('\n'));
    assert.equal((await request(kernel, 'alice.bomb.localhost', '/ok')).body, 'ok\n');
    assert.equal((await request(kernel, 'erin.hello.localhost', '/')).status, 200);
  });

  test('a guest that exits or traps fails its request, not the host', async () => {
    const exited = await request(kernel, 'alice.guest.localhost', '/exit');
    assert.equal(exited.status, 500, exited.body);
    const trapped = await request(kernel, 'alice.guest.localhost', '/trap');
    assert.equal(trapped.status, 500, trapped.body);
    const lines = kernel.instances.get('guest', 'alice')!.logs.query().map((entry) => entry.line);
    assert.ok(lines.some((line) => line.includes('GET /exit: exit: the guest exited with code 3')), lines.join('\n'));
    assert.ok(lines.some((line) => line.includes('GET /trap: trap: unreachable')), lines.join('\n'));
    assert.equal((await request(kernel, 'alice.guest.localhost', '/ok')).body, 'ok\n');
  });

  test('the guest sees only its CGI variables and its own DATA_DIR', async () => {
    const reply = await request(kernel, 'bob.guest.localhost', '/probe?a=b', { headers: { 'x-custom': 'yes', proxy: 'http://evil' } });
    assert.equal(reply.status, 200, reply.body);
    const probe = JSON.parse(reply.body) as { env: Record<string, string>; open: Record<string, string> };
    assert.equal(probe.env[HOST_SECRET], undefined, 'a host environment variable leaked');
    for (const name of ['PATH', 'HOME', 'USER', 'PWD']) assert.equal(probe.env[name], undefined, `${name} leaked`);
    assert.equal(probe.env.REQUEST_METHOD, 'GET');
    assert.equal(probe.env.PATH_INFO, '/probe');
    assert.equal(probe.env.QUERY_STRING, 'a=b');
    assert.equal(probe.env.HTTP_X_CUSTOM, 'yes');
    assert.equal(probe.env.HTTP_PROXY, undefined, 'the Proxy header must not become HTTP_PROXY');
    assert.equal(probe.env.SERVER_NAME, 'bob.guest.localhost');
    assert.equal(probe.env.DATA_DIR, '/data');
    assert.equal(probe.env.GREETING, 'hi', "the service's own env is passed");
    assert.ok(!Object.values(probe.env).some((value) => value.includes(kernel.config.settings.dataDir)), 'a host path leaked');
    for (const [file, result] of Object.entries(probe.open)) assert.notEqual(result, 'opened', `the guest opened ${file}`);
    assert.ok(hostFile in probe.open, reply.body);
  });

  test('hibernation stops a wasm instance and the next request wakes it', async () => {
    assert.equal((await request(kernel, 'frank.hello.localhost', '/visits')).status, 200);
    const instance = kernel.instances.get('hello', 'frank')!;
    const port = instance.handle!.address.port;
    await kernel.hibernate(instance);
    assert.equal(instance.state, 'hibernated');
    assert.equal(instance.handle, null);
    await assert.rejects(request(`http://127.0.0.1:${port}`, 'frank.hello.localhost', '/'), 'its server must be closed');
    const woken = await request(kernel, 'frank.hello.localhost', '/visits');
    assert.equal(woken.status, 200, woken.body);
    assert.equal((JSON.parse(woken.body) as { visits: number }).visits, 2);
    await waitFor(() => instance.state === 'running', 'frank to be running');
  });

  test('per-function metrics count invocations by outcome', async () => {
    const text = (await request(kernel, 'localhost', '/metrics')).body;
    assert.match(text, /tenement_wasm_invocations_total\{service="hello",instance="hello:alice",outcome="ok"\} [1-9]/);
    assert.match(text, /tenement_wasm_invocations_total\{service="spin",instance="spin:alice",outcome="timeout"\} 1/);
    assert.match(text, /tenement_wasm_invocations_total\{service="bomb",instance="bomb:alice",outcome="out-of-memory"\} 1/);
    assert.match(text, /tenement_wasm_duration_seconds_count\{service="hello"\} [1-9]/);
    assert.match(text, /tenement_wasm_queue_wait_seconds_count\{service="hello"\} [1-9]/);
    assert.match(text, /tenement_wasm_live_instances\{service="hello"\} 0/);
  });
});

// A component of Tenement's HTTP handler world (examples/wasm-hello, built by `npm run build` there): instances
// are kept per tenant, dropped after a trap and on hibernation.
const COMPONENT = path.join(ROOT, 'examples', 'wasm-hello', 'hello.wasm');
const componentSkip = existsSync(COMPONENT) ? false : 'needs examples/wasm-hello/hello.wasm (cd examples/wasm-hello && npm run build)';

describe('wasm tier with a component', { skip: componentSkip }, () => {
  let kernel: TestKernel;
  before(async () => {
    kernel = await createTestKernel({
      plugins: [...servePlugins, wasmRuntime],
      config: {
        services: {
          // The first start transpiles the component (seconds on a busy machine); later ones reuse the artifacts.
          ts: wasmFunction(COMPONENT, { startupTimeout: '60s' }),
          tsfresh: wasmFunction(COMPONENT, { startupTimeout: '60s', wasm: { fresh: true } }),
        },
      },
    });
  });
  after(() => kernel?.close());

  const live = (service: string, id: string) => sharedWasmPool(kernel).liveInstances((key) => key === `fn/${service}:${id}`);
  const get = (host: string, url: string) => request(kernel, host, url, { timeoutMs: 60_000 });

  test('keeps one instance per tenant, drops it after a trap and when the tenant hibernates', async () => {
    const first = await get('alice.ts.localhost', '/?name=x');
    assert.equal(first.status, 200, first.body);
    assert.equal((JSON.parse(first.body) as { hello: string }).hello, 'x');
    assert.equal(live('ts', 'alice'), 1);
    assert.equal((await get('alice.ts.localhost', '/')).status, 200);
    assert.equal(live('ts', 'alice'), 1, 'the second request reuses the instance');

    const boom = await get('alice.ts.localhost', '/boom');
    assert.equal(boom.status, 500, boom.body);
    assert.equal(live('ts', 'alice'), 0, 'a trapped instance is discarded');
    const lines = kernel.instances.get('ts', 'alice')!.logs.query().map((entry) => entry.line);
    assert.ok(lines.some((line) => line.includes('boom requested')), lines.join('\n'));
    assert.equal((await get('alice.ts.localhost', '/')).status, 200);
    assert.equal(live('ts', 'alice'), 1);

    const instance = kernel.instances.get('ts', 'alice')!;
    await kernel.hibernate(instance);
    assert.equal(instance.state, 'hibernated');
    await waitFor(() => live('ts', 'alice') === 0, 'the hibernated tenant to hold no instances');
    const woken = await get('alice.ts.localhost', '/?name=again');
    assert.equal(woken.status, 200, woken.body);
    assert.equal(instance.state, 'running');
    assert.equal(live('ts', 'alice'), 1);
  });

  test('fresh: true gives every request a new instance', async () => {
    assert.equal((await get('bob.tsfresh.localhost', '/')).status, 200);
    assert.equal((await get('bob.tsfresh.localhost', '/')).status, 200);
    assert.equal(live('tsfresh', 'bob'), 0);
  });
});

after(() => rmSync(work, { recursive: true, force: true }));
