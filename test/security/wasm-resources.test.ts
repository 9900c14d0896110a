// Nothing of a wasm request outlives it: the server's descriptor count (the kernel runs in this process, and
// the pool workers are its threads) stays flat over 3,500 requests to a WASI CGI module and to a component,
// including guests that leave files open, open files without bound, or are cut off at their deadline with
// files open. On main each CGI request leaked its preopened DATA_DIR (about 20,000 requests reached EMFILE).
// Also: a response over the 64 MiB output cap is a coded 502, never a cut 200.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { buildComponent } from '../../core/wasm/component/index.ts';
import { createTestKernel, type TestKernel } from '../../core/test-kernel.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import { FIXTURES, request, servePlugins, sleep } from '../helpers.ts';
import { buildCGuests, wasmFunction } from '../wasm-guests.ts';
import { ENGINES } from '../../core/wasm/engine.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';
import { MAX_GUEST_FILES } from '../../core/wasm/files-adapter.ts';
import { readyConfigs } from '../../core/wasm/wasmtime/config-preparer.ts';
import { preparedCount } from '../../core/wasm/wasmtime/prepared.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasm-resources-'));
const { handler: HANDLER, guest: GUEST, skip } = buildCGuests(work);
const PROBE = path.join(work, 'probe.wasm');

function jcoMissing(): string | false {
  try {
    import.meta.resolve('@bytecodealliance/jco');
    return false;
  } catch {
    return 'needs @bytecodealliance/jco to build the component guest (npm install: it is a devDependency)';
  }
}

after(() => rmSync(work, { recursive: true, force: true }));

const openDescriptors = (): number => readdirSync('/proc/self/fd').length;

/** Descriptors a made-ahead store or a ready config of the main thread holds: its two captures, each ours and wasmtime's. */
const CAPTURE_DESCRIPTORS = 4;

/**
 * Descriptors other than sockets: what a wasm request opens (DATA_DIR, files, memfds), without the clients' churn,
 * and without what wasmtime's main-thread calls hold by design, bounded, between requests: a store made ahead per
 * module (MAX_PREPARED at most) and the preparer's ready configs (16 slots), how many of each depending on which
 * modules the last turns of the loop served and where the governor sent their calls.
 */
function fileDescriptors(): number {
  let count = -CAPTURE_DESCRIPTORS * (preparedCount() + readyConfigs());
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (!readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) count++;
    } catch {
      // closed since the listing
    }
  }
  return count;
}

/** Descriptors of this process open on the files the test guest opens (`<DATA_DIR>/leak-N`). */
function leakFiles(): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (/\/leak-\d+$/.test(readlinkSync(`/proc/self/fd/${fd}`))) count++;
    } catch {
      // closed since the listing
    }
  }
  return count;
}

/** The descriptor count once it holds still (sockets closed by a client take a moment to close server-side). */
async function settledDescriptors(): Promise<number> {
  let last = openDescriptors();
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    const now = openDescriptors();
    if (now === last) return now;
    last = now;
  }
  return last;
}

interface Target {
  host: string;
  path: string;
  method?: string;
  body?: string;
}

/** `total` requests from `clients` keep-alive connections, each client sending one after another. */
async function hammer(kernel: TestKernel, targets: Target[], total: number, clients: number): Promise<Map<number, number>> {
  const base = new URL(kernel.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: clients });
  const statuses = new Map<number, number>();
  let next = 0;
  const one = (target: Target) =>
    new Promise<number>((resolve, reject) => {
      const req = http.request(
        { host: base.hostname, port: base.port, method: target.method ?? 'GET', path: target.path, headers: { host: target.host }, agent, timeout: 30_000 },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${target.host}${target.path} timed out`)));
      req.on('error', reject);
      req.end(target.body);
    });
  try {
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (next < total) {
          const target = targets[next++ % targets.length]!;
          const status = await one(target);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return statuses;
}

/**
 * Brings the server to its steady state before a count: one request to each target at a time. On wasmtime the
 * main thread keeps a store made ahead for each module it served, with its captures (four descriptors), and a
 * turn of the loop that serves several requests makes one for its last module only; the preparer's slots refill
 * after each answer. After concurrent requests either can be one short, which is not a leak.
 */
async function steady(kernel: TestKernel, targets: Target[]): Promise<void> {
  for (const target of targets) await hammer(kernel, [target], 1, 1);
}

const SLACK = 8;
/**
 * Requests of the flat-count tests, and the slack of descriptors other than sockets over them: a leak in one
 * request of 1,167 or more shows (10,000 requests with the slack of 8 all descriptors have showed one in 1,111).
 * Sockets (the four clients' and the proxy's) keep SLACK: they settle last, and a wasm request opens none.
 */
const REQUESTS = 3_500;
const FILE_SLACK = 2;

const engineSkip = (engine: string): string | false => (engine === 'wasmtime' && !wasmtimeStatus().usable ? `needs the wasmtime library: npm run fetch:wasmtime` : false);

for (const engine of ENGINES) describe(`wasm requests release every descriptor (WASI CGI on ${engine})`, { skip: skip || engineSkip(engine) }, () => {
  let kernel: TestKernel;
  before(async () => {
    kernel = await createTestKernel({
      plugins: [...servePlugins, wasmRuntime],
      config: {
        pluginOptions: { 'runtime-wasm': { engine } },
        services: {
          visits: wasmFunction(HANDLER, { autoCreate: false }),
          guest: wasmFunction(GUEST, { autoCreate: false }),
          spin: wasmFunction(GUEST, { autoCreate: false, wasm: { timeout: '300ms' } }),
        },
        instances: { visits: ['alice', 'bob'], guest: ['alice'], spin: ['alice'] },
      },
    });
  });
  after(async () => {
    await kernel?.close();
  });

  test('3,500 requests (DATA_DIR files written, files left open) leave the descriptor count flat', async () => {
    const targets: Target[] = [
      { host: 'alice.visits.localhost', path: '/visits' },
      { host: 'bob.visits.localhost', path: '/' },
      { host: 'alice.guest.localhost', path: '/leak' },
      { host: 'alice.guest.localhost', path: '/ok' },
    ];
    const warm = await hammer(kernel, targets, 200, 4);
    assert.deepEqual([...warm.keys()], [200]);
    await steady(kernel, targets);
    const before = await settledDescriptors();
    const filesBefore = fileDescriptors();
    const statuses = await hammer(kernel, targets, REQUESTS, 4);
    assert.deepEqual(Object.fromEntries(statuses), { 200: REQUESTS });
    await steady(kernel, targets);
    const afterCount = await settledDescriptors();
    assert.ok(afterCount <= before + SLACK, `descriptors grew from ${before} to ${afterCount} over ${REQUESTS} requests`);
    const filesAfter = fileDescriptors();
    assert.ok(filesAfter <= filesBefore + FILE_SLACK, `descriptors other than sockets grew from ${filesBefore} to ${filesAfter} over ${REQUESTS} requests`);
  });

  // V8: node:wasi's imports are wrapped in JS (wasi-run.ts). wasmtime: the guest is rewritten at compile time to
  // open and close files through a counting adapter module (core/wasm/files-adapter.ts); without it one guest
  // held 19,931 of the process's 20,000 descriptors.
  test('a guest cannot open more than 128 files (EMFILE), other tenants are served meanwhile, and what it opened is closed after it', async () => {
    // Each worker keeps what it loaded open (wasmtime maps artifacts); loaded on both before counting.
    const both: Target[] = [{ host: 'alice.guest.localhost', path: '/ok' }, { host: 'bob.visits.localhost', path: '/' }];
    await hammer(kernel, both, 16, 4);
    await steady(kernel, both);
    const before = await settledDescriptors();
    const [hog, other] = await Promise.all([
      request(kernel, 'alice.guest.localhost', '/files'),
      (async () => {
        // Another tenant, served while the hog runs and after it: its own files still open.
        const during = await request(kernel, 'bob.visits.localhost', '/visits');
        return [during, await request(kernel, 'bob.visits.localhost', '/visits')];
      })(),
    ]);
    assert.equal(hog.status, 200, hog.body);
    const [opened, errno] = hog.body.trim().split(' ');
    console.log(`# on ${engine} the guest held ${opened} files open at once, then: ${errno}`);
    assert.equal(Number(opened), MAX_GUEST_FILES, hog.body);
    assert.equal(errno, 'EMFILE', hog.body);
    for (const reply of other) assert.equal(reply.status, 200, reply.body);
    // Again: the bound is per request, and the last one's files were released.
    assert.equal((await request(kernel, 'alice.guest.localhost', '/files')).body.trim(), `${MAX_GUEST_FILES} EMFILE`);
    await steady(kernel, both);
    const afterCount = await settledDescriptors();
    assert.ok(afterCount <= before + SLACK, `descriptors grew from ${before} to ${afterCount}`);
    assert.equal(leakFiles(), 0, 'a file the guest opened is still open');
  });

  test('a guest cut off at its deadline with files open leaves none behind', async () => {
    const ok: Target[] = [{ host: 'alice.spin.localhost', path: '/ok' }];
    await steady(kernel, ok);
    const before = await settledDescriptors();
    for (let i = 0; i < 5; i++) {
      const reply = await request(kernel, 'alice.spin.localhost', '/leakloop');
      assert.equal(reply.status, 504, reply.body);
    }
    // The tenant's next request runs after its leftovers were swept.
    assert.equal((await request(kernel, 'alice.spin.localhost', '/ok')).status, 200);
    await steady(kernel, ok);
    const afterCount = await settledDescriptors();
    assert.ok(afterCount <= before + SLACK, `descriptors grew from ${before} to ${afterCount} over 5 timeouts (each held 11)`);
  });

  test('output over the 64 MiB cap is a coded 502, not a truncated 200', async () => {
    const reply = await request(kernel, 'alice.guest.localhost', '/big', { timeoutMs: 60_000 });
    assert.equal(reply.status, 502, reply.body.slice(0, 200));
    assert.equal((JSON.parse(reply.body) as { error: { code: string } }).error.code, 'TNM_ERR_WASM_OUTPUT_TOO_LARGE');
    const lines = kernel.instances.get('guest', 'alice')!.logs.query().map((entry) => entry.line);
    assert.ok(lines.some((line) => line.includes('GET /big: output-too-large')), lines.join('\n'));
    assert.equal((await request(kernel, 'alice.guest.localhost', '/ok')).status, 200);
  });
});

describe('wasm requests release every descriptor (component)', { skip: jcoMissing() }, () => {
  let kernel: TestKernel;
  before(async () => {
    await buildComponent({ source: path.join(FIXTURES, 'wasm-component', 'probe.ts'), out: PROBE });
    kernel = await createTestKernel({
      plugins: [...servePlugins, wasmRuntime],
      config: {
        services: {
          // The first start transpiles the component (seconds on a busy machine).
          probe: wasmFunction(PROBE, { autoCreate: false, startupTimeout: '60s', limits: { memory: '512MB' } }),
          fresh: wasmFunction(PROBE, { autoCreate: false, startupTimeout: '60s', wasm: { fresh: true } }),
        },
        instances: { probe: ['alice', 'bob'], fresh: ['alice'] },
      },
    });
  });
  after(() => kernel?.close());

  test('3,500 requests (tenant files written and read, fresh instances) leave the descriptor count flat', async () => {
    const targets: Target[] = [
      { host: 'alice.probe.localhost', path: '/write?name=note', method: 'POST', body: 'hello' },
      { host: 'alice.probe.localhost', path: '/read?name=note' },
      { host: 'bob.probe.localhost', path: '/calls' },
      { host: 'alice.fresh.localhost', path: '/read?name=none' },
    ];
    const warm = await hammer(kernel, targets, 200, 4);
    assert.ok([...warm.keys()].every((status) => [200, 204, 404].includes(status)), JSON.stringify(Object.fromEntries(warm)));
    const before = await settledDescriptors();
    const filesBefore = fileDescriptors();
    const statuses = await hammer(kernel, targets, REQUESTS, 4);
    assert.ok([...statuses.keys()].every((status) => [200, 204, 404].includes(status)), JSON.stringify(Object.fromEntries(statuses)));
    const afterCount = await settledDescriptors();
    assert.ok(afterCount <= before + SLACK, `descriptors grew from ${before} to ${afterCount} over ${REQUESTS} requests`);
    const filesAfter = fileDescriptors();
    assert.ok(filesAfter <= filesBefore + FILE_SLACK, `descriptors other than sockets grew from ${filesBefore} to ${filesAfter} over ${REQUESTS} requests`);
  });

  test('a component body over the 64 MiB cap is a coded 502, not a truncated 200', async () => {
    const reply = await request(kernel, 'alice.probe.localhost', '/big?mb=65', { timeoutMs: 60_000 });
    assert.equal(reply.status, 502, reply.body.slice(0, 200));
    assert.equal((JSON.parse(reply.body) as { error: { code: string } }).error.code, 'TNM_ERR_WASM_OUTPUT_TOO_LARGE');
    const small = await request(kernel, 'alice.probe.localhost', '/big?mb=1');
    assert.equal(small.status, 200);
    assert.equal(small.body.length, 1024 * 1024);
  });
});
