// The wasmtime engine's own guarantees (the shared ones run on both engines in wasm-tier.test.ts): a runaway is
// stopped by epoch interruption with its worker alive, artifacts are serialized once and deserialized on a cold
// start, components and a missing library fall back to V8 (logged), and native memory does not grow over
// 100,000 invocations.
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createTestKernel } from '../../core/test-kernel.ts';
import { ModuleCache } from '../../core/wasm/module-cache.ts';
import { WasmPool, type CompiledModule } from '../../core/wasm/pool.ts';
import { wasmtimeStatus, WASMTIME_VERSION } from '../../core/wasm/wasmtime/library.ts';
import { WASMTIME_BACKSTOP_MS, claimTickerSlot, memfdPrefix, releaseTickerSlot, wasmtimeEngine } from '../../core/wasm/wasmtime/host.ts';
import { runWasmtimeCommand } from '../../core/wasm/wasmtime/run.ts';
import wasmRuntime from '../../runtimes/wasm/index.ts';
import metrics from '../../plugins/metrics/index.ts';
import { MAX_GUEST_FILES } from '../../core/wasm/files-adapter.ts';
import { ROOT, request, servePlugins, waitFor } from '../helpers.ts';
import { buildCGuests, wasmFunction } from '../wasm-guests.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasmtime-'));
const { handler: HANDLER, guest: GUEST, skip: clangSkip } = buildCGuests(work);
const status = wasmtimeStatus();
const skip = clangSkip || (status.usable ? false : `${status.reason} (CI fetches it: .ci/run)`);
const COMPONENT = path.join(ROOT, 'examples', 'wasm-hello', 'hello.wasm');
const CAP_PAGES = 256;
after(() => rmSync(work, { recursive: true, force: true }));

type PiscinaEvents = { on(event: 'workerCreate' | 'workerDestroy', listener: () => void): void };
/** Counts the pool's worker replacements (piscina's events): a runaway stopped by epoch replaces none. */
function countReplacements(pool: WasmPool): { destroyed: number } {
  const counter = { destroyed: 0 };
  (pool as unknown as { piscina: PiscinaEvents }).piscina.on('workerDestroy', () => counter.destroyed++);
  return counter;
}

const TRICKS_WAT = path.join(ROOT, 'test', 'fixtures', 'wasm', 'files-tricks.wat');
const TRICKS = path.join(work, 'files-tricks.wasm');

/** Builds a .wat with wabt; the reason to skip when it cannot. */
function wat2wasm(source: string, out: string): string | false {
  try {
    execFileSync('wat2wasm', [source, '-o', out], { stdio: 'pipe' });
    return false;
  } catch (error) {
    return `needs wat2wasm (apt-get install wabt): ${(error as Error).message.split('\n')[0]}`;
  }
}

/** One function import of type 0, encoded. */
const importOf = (module: string, name: string): number[] => [module.length, ...Buffer.from(module), name.length, ...Buffer.from(name), 0, 0];

/** Descriptors of this process open on files under `dir`. */
function leakFiles(dir: string): number {
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`).startsWith(`${dir}/`)) count++;
    } catch {
      // closed since the listing
    }
  }
  return count;
}

const cgi = (route: string) => ({ args: ['guest'], env: { PATH_INFO: route, REQUEST_METHOD: 'GET' }, stdin: new Uint8Array(), dataDir: null, preopenAs: '/data' });

describe('wasmtime engine', { skip }, () => {
  let pool: WasmPool;
  let compiled: CompiledModule;
  const cacheDir = path.join(work, 'cache');
  before(async () => {
    pool = new WasmPool({ threads: 2 });
    const code = await new ModuleCache(cacheDir).load(GUEST, CAP_PAGES, 'wasmtime');
    assert.equal(code.kind, 'module');
    compiled = (code as { compiled: CompiledModule }).compiled;
  });
  after(async () => pool?.close());

  test('runs a WASI command from its serialized artifact, keyed by content hash and engine version', async () => {
    assert.equal(compiled.engine, 'wasmtime');
    const dir = path.join(cacheDir, `wasmtime-${WASMTIME_VERSION}`);
    const files = readdirSync(dir);
    // The guest (rewritten to count its open files) and the adapter it links to, named by its memory's limits.
    // (The minimum is the guest's own: its data grows with the fixture's routes.)
    assert.equal(files.length, 2, files.join(', '));
    assert.ok(files.includes(`${compiled.hash}.f1.cwasm`), files.join(', '));
    assert.ok(files.some((file) => new RegExp(`^files-adapter-v1-\\d+-${CAP_PAGES}\\.cwasm$`).test(file)), files.join(', '));
    const outcome = await pool.runWasi(compiled, { instanceKey: 'a', deadlineMs: 10_000, ...cgi('/ok') });
    assert.ok(outcome.ok, JSON.stringify(outcome));
    assert.equal(outcome.value.exitCode, 0);
    assert.match(Buffer.from(outcome.value.stdout).toString(), /\r?\n\r?\nok\n$/);
  });

  test('a runaway guest traps at its deadline by epoch and its worker lives on', async () => {
    const replacements = countReplacements(pool);
    const startedAt = performance.now();
    const outcome = await pool.runWasi(compiled, { instanceKey: 'runaway', deadlineMs: 300, ...cgi('/loop') });
    const stoppedAfter = performance.now() - startedAt;
    assert.equal(outcome.ok, false);
    assert.equal(outcome.ok === false && outcome.kind, 'timeout');
    assert.match(outcome.ok === false ? outcome.message : '', /interrupted \(wasmtime epoch\), its worker lives on/);
    console.log(`# runaway with a 300 ms deadline answered after ${stoppedAfter.toFixed(1)} ms`);
    // The next calls are served by the same workers: none was replaced.
    for (let i = 0; i < 4; i++) assert.ok((await pool.runWasi(compiled, { instanceKey: 'after', deadlineMs: 10_000, ...cgi('/ok') })).ok);
    assert.equal(replacements.destroyed, 0, 'a worker was replaced');
  });

  test('a guest blocked in a host call (sleep) is cut by the pool at the backstop, and its worker\'s captures are closed', { timeout: 120_000 }, async () => {
    // The workers' captures; the main thread's (thread 0: its inline calls' stores and the configs made ahead for
    // them, config-preparer.ts) are its own and stay.
    const memfds = () => readdirSync('/proc/self/fd').filter((fd) => {
      try {
        const name = readlinkSync(`/proc/self/fd/${fd}`);
        return name.startsWith('/memfd:tenement-wasmtime-') && !name.startsWith(`/memfd:${memfdPrefix(0)}`);
      } catch {
        return false;
      }
    }).length;
    const replacements = countReplacements(pool);
    for (let i = 0; i < 3; i++) {
      // The deadline passes while the guest sleeps (nothing traps there): the request is answered at its deadline,
      // and the pool's backstop, WASMTIME_BACKSTOP_MS later, is what ends its call (the worker is replaced).
      const started = performance.now();
      const outcome = await pool.runWasi(compiled, { instanceKey: `sleeper${i}`, deadlineMs: 300, ...cgi('/sleep') });
      assert.equal(outcome.ok === false && outcome.kind, 'timeout', JSON.stringify(outcome));
      assert.ok(performance.now() - started < 300 + WASMTIME_BACKSTOP_MS, 'the request waited for the backstop');
    }
    await waitFor(() => replacements.destroyed >= 1, 'a sleeper\'s worker to be replaced at the backstop', 3 * WASMTIME_BACKSTOP_MS + 10_000);
    for (let i = 0; i < 4; i++) assert.ok((await pool.runWasi(compiled, { instanceKey: 'after-sleep', deadlineMs: 10_000, ...cgi('/ok') })).ok);
    // Per live worker (2 threads): its two fallback captures, and until it has run its work after the answer the
    // last call's store (no DATA_DIR here) with that call's stdout and stderr memfds, each open twice (ours and
    // wasmtime's; prepared.ts). None left by the three replaced ones.
    await waitFor(() => memfds() <= 2 * (2 + 4), 'the replaced workers\' memfds to be closed', 10_000);
    // The replaced workers never said their guests stopped: the pool did, so the epoch ticker sleeps again
    // (it would otherwise wake every millisecond for good).
    const cells = new Int32Array(wasmtimeEngine().shared!.ticker);
    await waitFor(() => Atomics.load(cells, 1) === 0, 'the ticker\'s running count to be back to 0', 10_000);
  });

  test('the memory cap is the store limit: a memory bomb is out-of-memory, the next call is fine', async () => {
    const outcome = await pool.runWasi(compiled, { instanceKey: 'bomb', deadlineMs: 10_000, ...cgi('/bomb') });
    assert.equal(outcome.ok === false && outcome.kind, 'out-of-memory', JSON.stringify(outcome));
    const line = outcome.logs.find((entry) => entry.line.startsWith('malloc failed after'))?.line ?? '';
    assert.ok(Number(/after (\d+) MiB/.exec(line)?.[1] ?? 99) <= CAP_PAGES / 16, line);
    assert.ok((await pool.runWasi(compiled, { instanceKey: 'bomb', deadlineMs: 10_000, ...cgi('/ok') })).ok);
  });

  test('stdout past the output cap fails the request as output-too-large, never a cut answer', async () => {
    const outcome = await pool.runWasi(compiled, { instanceKey: 'big', deadlineMs: 30_000, ...cgi('/big') });
    assert.equal(outcome.ok === false && outcome.kind, 'output-too-large', JSON.stringify(outcome).slice(0, 300));
  });

  test('a cold start deserializes the artifact on disk instead of compiling', async () => {
    const file = path.join(cacheDir, `wasmtime-${WASMTIME_VERSION}`, `${compiled.hash}.f1.cwasm`);
    const before = statSync(file);
    // A new cache and a new pool: what a restarted server has.
    const code = await new ModuleCache(cacheDir).load(GUEST, CAP_PAGES, 'wasmtime');
    const after = statSync(file);
    assert.equal(after.mtimeMs, before.mtimeMs, 'the artifact was written again');
    assert.equal(after.ino, before.ino);
    const fresh = new WasmPool({ threads: 1 });
    try {
      const outcome = await fresh.runWasi((code as { compiled: CompiledModule }).compiled, { instanceKey: 'cold', deadlineMs: 10_000, ...cgi('/ok') });
      assert.ok(outcome.ok, JSON.stringify(outcome));
    } finally {
      await fresh.close();
    }
  });

  test('a corrupt artifact fails its calls with wasmtime\'s message, and the host lives on', async () => {
    const corrupt: CompiledModule = { engine: 'wasmtime', hash: 'corrupt', artifact: HANDLER, adapter: null, capPages: CAP_PAGES, fuel: false };
    const outcome = await pool.runWasi(corrupt, { instanceKey: 'corrupt', deadlineMs: 10_000, ...cgi('/') });
    assert.equal(outcome.ok === false && outcome.kind, 'error');
    assert.match(outcome.ok === false ? outcome.message : '', /wasmtime could not load the artifact/);
    assert.ok((await pool.runWasi(compiled, { instanceKey: 'a', deadlineMs: 10_000, ...cgi('/ok') })).ok);
  });

  test('components load on wasmtime: compiled once to an artifact, named by their exports (the rest is in wasm-component-*.test.ts)', { skip: existsSync(COMPONENT) ? false : 'needs examples/wasm-hello/hello.wasm' }, async () => {
    const code = await new ModuleCache(cacheDir).load(COMPONENT, CAP_PAGES, 'wasmtime');
    assert.equal(code.kind, 'component');
    const artifact = (code as { artifact: { exports: string[]; wasmtime?: { file: string } } }).artifact;
    assert.deepEqual(artifact.exports, ['handle']);
    assert.ok(artifact.wasmtime && existsSync(artifact.wasmtime.file));
  });

  test('a hostile guest cannot open more than 128 files by renumbering over the preopen or closing stdio, on either engine', { skip: wat2wasm(TRICKS_WAT, TRICKS) }, async () => {
    for (const engine of ['wasmtime', 'v8'] as const) {
      const code = await new ModuleCache(cacheDir).load(TRICKS, CAP_PAGES, engine);
      const tricks = (code as { compiled: CompiledModule }).compiled;
      const dataDir = mkdtempSync(path.join(work, `tricks-${engine}-`));
      const outcome = await pool.runWasi(tricks, { instanceKey: `tricks-${engine}`, deadlineMs: 30_000, ...cgi('/'), dataDir });
      assert.ok(outcome.ok, `${engine}: ${JSON.stringify(outcome)}`);
      const out = Buffer.from(outcome.value.stdout);
      const words = Array.from({ length: 7 }, (_, i) => out.readInt32LE(i * 4));
      // 128 opened then EMFILE (33); renumbering over the preopen is EBADF (8); closing stdio gives nothing back;
      // closing one file gives back one; renumbering one file over another (closing it) gives back one.
      assert.deepEqual(words, [MAX_GUEST_FILES, 33, 8, 0, 1, 0, 1], engine);
      assert.equal(leakFiles(dataDir), 0, engine);
    }
  });

  test('a module importing from the adapter\'s reserved name is refused with a coded compile error', async () => {
    const file = path.join(work, 'reserved.wasm');
    const imports = [2, ...importOf('wasi_snapshot_preview1', 'path_open'), ...importOf('tnm_files', 'x')];
    writeFileSync(file, Uint8Array.from([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0, 1, 5, 1, 0x60, 1, 0x7f, 0, 2, imports.length, ...imports]));
    await assert.rejects(new ModuleCache(cacheDir).load(file, CAP_PAGES, 'wasmtime'), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'TNM_ERR_WASM_COMPILE_FAILED');
      assert.match(error.message, /tnm_files/);
      return true;
    });
  });

  test('fuel metering: a metered call reports the fuel it used, and a runaway traps when its budget is spent', async () => {
    const code = await new ModuleCache(cacheDir).load(GUEST, CAP_PAGES, 'wasmtime', { fuel: true });
    const metered = (code as { compiled: CompiledModule }).compiled;
    assert.ok(metered.engine === 'wasmtime' && metered.fuel && metered.artifact.endsWith('.fuel.cwasm'), JSON.stringify(metered));
    const ok = await pool.runWasi(metered, { instanceKey: 'fuel', deadlineMs: 10_000, fuel: 1_000_000_000, ...cgi('/ok') });
    assert.ok(ok.ok, JSON.stringify(ok));
    const used = ok.timing?.fuelUsed ?? 0;
    console.log(`# /ok used ${used} fuel`);
    assert.ok(used > 0 && used < 1_000_000_000, `fuel used: ${used}`);
    // The same request again costs the same: the figure is the guest's work, not the time it took.
    const again = await pool.runWasi(metered, { instanceKey: 'fuel', deadlineMs: 10_000, fuel: 1_000_000_000, ...cgi('/ok') });
    assert.equal(again.timing?.fuelUsed, used);
    // A runaway with a budget far below its deadline's worth stops at the budget.
    const spent = await pool.runWasi(metered, { instanceKey: 'fuel', deadlineMs: 60_000, fuel: 5_000_000, ...cgi('/loop') });
    assert.equal(spent.ok === false && spent.kind, 'timeout', JSON.stringify(spent));
    assert.match(spent.ok === false ? spent.message : '', /ran out of fuel/);
    assert.equal(spent.timing?.fuelUsed, 5_000_000);
    // Unmetered code reports no figure.
    const plain = await pool.runWasi(compiled, { instanceKey: 'fuel', deadlineMs: 10_000, ...cgi('/ok') });
    assert.ok(plain.ok);
    assert.equal(plain.timing?.fuelUsed, undefined);
  });

  test('RSS stays flat over 100,000 invocations (every store, WASI config, capture and trap freed; four rounds after a warm-up)', { timeout: 600_000 }, () => {
    // In this thread, as a pool worker runs them (run.ts), without the thread hop: 100,000 calls in about the time
    // 30,000 took through the pool. Every hundredth traps.
    if (compiled.engine !== 'wasmtime') throw new Error('compiled for V8');
    const shared = wasmtimeEngine().shared!;
    const slot = claimTickerSlot()!;
    const { hash, artifact, adapter, capPages } = compiled;
    let failed = 0;
    const calls = (count: number) => {
      for (let done = 1; done <= count; done++) {
        const route = done % 100 === 0 ? '/trap' : '/ok';
        const input = { ...cgi(route), hash, artifact, adapter, capPages, deadlineAt: performance.timeOrigin + performance.now() + 30_000, deadlineMs: 30_000, slot, fuel: null };
        const outcome = runWasmtimeCommand(shared, input);
        if (outcome.ok !== (route === '/ok') || (!outcome.ok && outcome.kind !== 'trap')) failed++;
      }
    };
    // A full collection before each reading: the JS garbage of 20,000 calls must not hide (or fake) native growth.
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as () => void;
    const startedAt = performance.now();
    try {
      calls(20_000);
      gc();
      // RSS is the whole process's: other threads and the allocator moving pages swing one reading by tens of MiB
      // either way. A leak grows in every round; noise does not: the least growth of four rounds must stay small.
      const rounds: number[] = [];
      let before = process.memoryUsage.rss();
      for (let round = 0; round < 4; round++) {
        calls(20_000);
        gc();
        const after = process.memoryUsage.rss();
        rounds.push(after - before);
        before = after;
      }
      const mib = (bytes: number): string => (bytes / 1_048_576).toFixed(1);
      const least = Math.min(...rounds);
      console.log(`# 100,000 wasmtime invocations in ${((performance.now() - startedAt) / 1000).toFixed(1)} s; RSS growth per 20,000 after 20,000 warm-up calls, four rounds: ${rounds.map(mib).join(', ')} MiB`);
      assert.equal(failed, 0);
      // 400 bytes a call would be 8 MiB a round; stores kept by 95% of calls grew 135-170 MiB per 5,000 calls.
      assert.ok(least < 8 * 1_048_576, `RSS grew in every round, by at least ${mib(least)} MiB: ${rounds.map(mib).join(', ')}`);
    } finally {
      releaseTickerSlot(new Int32Array(shared.ticker), slot);
    }
  });
});

describe('wasm.fuel through the tier', { skip }, () => {
  test('a metered service: its requests\' fuel in tenement_wasm_fuel_consumed_total, a runaway stopped by its budget (504, logged); on V8 a log line says it is not metered', async () => {
    const kernel = await createTestKernel({
      plugins: [...servePlugins, wasmRuntime, metrics],
      config: {
        services: {
          metered: wasmFunction(GUEST, { wasm: { engine: 'wasmtime', fuel: 20_000_000, timeout: '60s' } }),
          unmetered: wasmFunction(GUEST, { wasm: { engine: 'v8', fuel: 20_000_000 } }),
        },
      },
    });
    try {
      assert.equal((await request(kernel, 'alice.metered.localhost', '/ok')).status, 200);
      const runaway = await request(kernel, 'alice.metered.localhost', '/loop', { timeoutMs: 60_000 });
      assert.equal(runaway.status, 504, runaway.body);
      const lines = kernel.instances.get('metered', 'alice')!.logs.query().map((entry) => entry.line);
      assert.ok(lines.some((line) => line.includes('GET /loop: timeout: the guest ran out of fuel')), lines.join('\n'));
      const text = (await request(kernel, 'localhost', '/metrics')).body;
      const used = Number(/tenement_wasm_fuel_consumed_total\{service="metered",instance="metered:alice"\} (\d+)/.exec(text)?.[1] ?? 0);
      // The runaway spent its whole budget; /ok added its own few thousand.
      assert.ok(used > 20_000_000, text.split('\n').filter((line) => line.includes('fuel')).join('\n'));
      assert.equal((await request(kernel, 'bob.unmetered.localhost', '/ok')).status, 200);
      const v8Lines = kernel.instances.get('unmetered', 'bob')!.logs.query().map((entry) => entry.line);
      assert.ok(v8Lines.some((line) => line.includes('wasm.fuel: this code runs without fuel metering')), v8Lines.join('\n'));
      assert.doesNotMatch(text, /tenement_wasm_fuel_consumed_total\{service="unmetered"/);
    } finally {
      await kernel.close();
    }
  });
});

describe('wasmtime fallback to V8', { skip: clangSkip }, () => {
  const saved = process.env.TENEMENT_WASMTIME_DIR;
  after(() => {
    if (saved === undefined) delete process.env.TENEMENT_WASMTIME_DIR;
    else process.env.TENEMENT_WASMTIME_DIR = saved;
  });

  test('a service asking for wasmtime where its library is missing runs on V8, with the reason in its log', async () => {
    process.env.TENEMENT_WASMTIME_DIR = path.join(work, 'no-wasmtime-here');
    const kernel = await createTestKernel({ plugins: [...servePlugins, wasmRuntime], config: { services: { hello: wasmFunction(HANDLER, { wasm: { engine: 'wasmtime' } }) } } });
    try {
      const reply = await request(kernel, 'alice.hello.localhost', '/');
      assert.equal(reply.status, 200, reply.body);
      assert.equal(reply.body, 'Hello from C, alice! (GET /?)\n');
      const lines = kernel.instances.get('hello', 'alice')!.logs.query().map((entry) => entry.line);
      assert.ok(lines.some((line) => line.includes('[wasm] engine: wasmtime was asked for, running on V8: TNM_ERR_WASMTIME_UNAVAILABLE') && line.includes('no-wasmtime-here')), lines.join('\n'));
    } finally {
      await kernel.close();
    }
  });

  test('a component asking for wasmtime runs on wasmtime, no fallback in its log; its first compile does not count against startupTimeout', { skip: skip || (existsSync(COMPONENT) ? false : 'needs examples/wasm-hello/hello.wasm'), timeout: 300_000 }, async () => {
    if (saved === undefined) delete process.env.TENEMENT_WASMTIME_DIR;
    else process.env.TENEMENT_WASMTIME_DIR = saved;
    // The first start compiles the component (Cranelift, 7-18 s here): far past a 2 s startupTimeout, which counts
    // from the end of the compile (the test kernel's data dir is new, so is its artifact cache).
    const kernel = await createTestKernel({ plugins: [...servePlugins, wasmRuntime], config: { services: { hello: wasmFunction(COMPONENT, { wasm: { engine: 'wasmtime' }, startupTimeout: '2s' }) } } });
    try {
      const instance = await kernel.spawnInstance('hello', 'alice');
      assert.equal(instance.state, 'running', `hello:alice did not start: ${instance.lastError}`);
      const reply = await request(kernel, 'alice.hello.localhost', '/', { timeoutMs: 120_000 });
      assert.equal(reply.status, 200, reply.body);
      const lines = kernel.instances.get('hello', 'alice')!.logs.query().map((entry) => entry.line);
      assert.ok(!lines.some((line) => line.includes('running on V8')), lines.join('\n'));
    } finally {
      await kernel.close();
    }
  });
});

describe('ten doctor and the wasmtime library', () => {
  const ten = (args: string[], env: NodeJS.ProcessEnv) =>
    promisify(execFile)(process.execPath, [path.join(ROOT, 'bin', 'ten.mjs'), ...args], { env: { ...process.env, ...env }, cwd: work, timeout: 120_000 }).then(
      (done) => ({ code: 0, stdout: done.stdout, stderr: done.stderr }),
      (failed: { code?: number; stdout?: string; stderr?: string }) => ({ code: failed.code ?? 1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' }),
    );

  test('reports the engine unusable, with the command that fixes it, where the library is missing', { timeout: 180_000 }, async () => {
    const missing = path.join(work, 'doctor-no-wasmtime');
    const result = await ten(['doctor', '--json', '--probe-only'], { TENEMENT_WASMTIME_DIR: missing });
    const report = JSON.parse(result.stdout) as { wasmtime: { usable: boolean; reason?: string; library: string } };
    assert.equal(report.wasmtime.usable, false);
    assert.equal(report.wasmtime.library, path.join(missing, 'libwasmtime.so'));
    assert.match(report.wasmtime.reason ?? '', /ten doctor --fix wasmtime/);
  });

  test('reports the engine usable where the library is', { skip, timeout: 180_000 }, async () => {
    const result = await ten(['doctor', '--json', '--probe-only'], {});
    const report = JSON.parse(result.stdout) as { wasmtime: { usable: boolean; version: string } };
    assert.deepEqual([report.wasmtime.usable, report.wasmtime.version], [true, WASMTIME_VERSION]);
  });

  test('--fix refuses anything but wasmtime', { timeout: 180_000 }, async () => {
    const result = await ten(['doctor', '--probe-only', '--fix', 'everything'], {});
    assert.notEqual(result.code, 0);
    // Other fetchable tools may be named next to it (criu).
    assert.match(result.stderr + result.stdout, /--fix: only 'wasmtime'( or '[\w-]+')* can be fetched, not 'everything'/);
  });
});
