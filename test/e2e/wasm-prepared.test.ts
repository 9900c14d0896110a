// Instances made ahead (core/wasm/wasmtime/prepared.ts): after answering a call, a wasmtime worker makes the
// module's next store and instance off the request's path. Each request must still run in an instance no request
// ran in, with its own WASI context (env, DATA_DIR), and a guest with a start function must never be instantiated
// ahead (its code would run outside any request and deadline). The behaviour tests run on both engines.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ModuleCache } from '../../core/wasm/module-cache.ts';
import { WasmPool, type CompiledModule, type WasiCallOptions } from '../../core/wasm/pool.ts';
import { wasmtimeStatus } from '../../core/wasm/wasmtime/library.ts';
import { buildCGuests } from '../wasm-guests.ts';

const work = mkdtempSync(path.join(os.tmpdir(), 'tenement-wasm-prepared-'));
const { guest: GUEST, skip: clangSkip } = buildCGuests(work);
const status = wasmtimeStatus();

/** Counts up a byte of its memory and prints it: a request that ran in an instance before would print 2 or more. */
const COUNTER_WAT = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "Content-Type: text/plain\\0d\\0a\\0d\\0a0\\0a")
  (func (export "_start")
    (i32.store8 (i32.const 44) (i32.add (i32.load8_u (i32.const 44)) (i32.const 1)))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 30))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`;
/**
 * Prints, as digits, three bytes it then sets to 1: one in its first page (no data there), one in a page it grew
 * within the pooling allocator's resident bytes (host.ts POOL_KEEP_RESIDENT, 1 MiB), one past them. A request in a
 * memory slot another request wrote would print a 1.
 */
const SLOT_WAT = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "Content-Type: text/plain\\0d\\0a\\0d\\0a")
  (func (export "_start")
    (drop (memory.grow (i32.const 31)))
    (i32.store8 (i32.const 44) (i32.add (i32.const 48) (i32.load8_u (i32.const 1000))))
    (i32.store8 (i32.const 45) (i32.add (i32.const 48) (i32.load8_u (i32.const 655360))))
    (i32.store8 (i32.const 46) (i32.add (i32.const 48) (i32.load8_u (i32.const 1572864))))
    (i32.store8 (i32.const 47) (i32.const 10))
    (i32.store8 (i32.const 1000) (i32.const 1))
    (i32.store8 (i32.const 655360) (i32.const 1))
    (i32.store8 (i32.const 1572864) (i32.const 1))
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 32))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))`;
/** Spins in its start function, which instantiating runs. */
const START_WAT = `(module
  (memory (export "memory") 1)
  (func $spin (loop $again (br $again)))
  (start $spin)
  (func (export "_start")))`;

function wat(name: string, source: string): string | false {
  const out = path.join(work, `${name}.wasm`);
  writeFileSync(path.join(work, `${name}.wat`), source);
  try {
    execFileSync('wat2wasm', [path.join(work, `${name}.wat`), '-o', out], { stdio: 'pipe' });
    return out;
  } catch {
    return false;
  }
}
const COUNTER = wat('counter', COUNTER_WAT);
const START = wat('start', START_WAT);
const SLOT = wat('slot', SLOT_WAT);
const watSkip = COUNTER && START && SLOT ? false : 'needs wat2wasm (apt-get install wabt)';

const call = (env: Record<string, string>, dataDir: string | null, instanceKey: string, deadlineMs = 10_000): WasiCallOptions => ({
  instanceKey, deadlineMs, args: ['guest'], env: { REQUEST_METHOD: 'GET', ...env }, stdin: new Uint8Array(), dataDir, preopenAs: '/data',
});

after(() => rmSync(work, { recursive: true, force: true }));

for (const engine of ['v8', 'wasmtime'] as const) {
  const skip = clangSkip || watSkip || (engine === 'wasmtime' && !status.usable ? `${status.reason} (CI fetches it: .ci/run)` : false);
  describe(`instances made ahead, ${engine}`, { skip }, () => {
    let pool: WasmPool;
    const load = async (file: string): Promise<CompiledModule> => {
      const code = await new ModuleCache(path.join(work, `cache-${engine}`)).load(file, 64, engine);
      return (code as { compiled: CompiledModule }).compiled;
    };
    // One thread: every call, and whatever is made ahead, is in the same worker.
    before(() => (pool = new WasmPool({ threads: 1 })));
    after(async () => pool?.close());

    test('every request runs in an instance no request ran in', async () => {
      const counter = await load(COUNTER as string);
      assert.equal(compiled(counter).ahead, true);
      for (let i = 0; i < 20; i++) {
        const outcome = await pool.runWasi(counter, call({}, null, i % 2 === 0 ? 'fn/counter:a' : 'fn/counter:b'));
        assert.ok(outcome.ok, JSON.stringify(outcome));
        assert.equal(Buffer.from(outcome.value.stdout).toString(), 'Content-Type: text/plain\r\n\r\n1\n');
      }
    });

    test('a memory slot reused by another tenant shows nothing the last request wrote, within the resident bytes or past them', async () => {
      const slot = await load(SLOT as string);
      const dir = path.join(work, `${engine}-slot`);
      mkdirSync(dir, { recursive: true });
      for (let i = 0; i < 20; i++) {
        const tenant = i % 2 === 0 ? 'a' : 'b';
        // With and without DATA_DIR: a store holding it is deleted before the answer, the others after it.
        const outcome = await pool.runWasi(slot, call({}, i % 4 < 2 ? dir : null, `fn/slot:${tenant}`));
        assert.ok(outcome.ok, JSON.stringify(outcome));
        assert.equal(Buffer.from(outcome.value.stdout).toString(), 'Content-Type: text/plain\r\n\r\n000\n', `request ${i}`);
      }
    });

test('a request on an instance made after another tenant\'s call sees only its own env and DATA_DIR', async () => {
      const probe = await load(GUEST);
      const dirs = { a: path.join(work, `${engine}-a`), b: path.join(work, `${engine}-b`) };
      for (const dir of Object.values(dirs)) mkdirSync(dir, { recursive: true });
      writeFileSync(path.join(dirs.a, 'secret'), 'a only');
      for (let i = 0; i < 6; i++) {
        const tenant = i % 2 === 0 ? 'a' : 'b';
        const outcome = await pool.runWasi(probe, call({ PATH_INFO: '/probe', PROBE_FILE: '/data/secret', TENANT: tenant }, dirs[tenant], `fn/probe:${tenant}`));
        assert.ok(outcome.ok, JSON.stringify(outcome));
        const text = Buffer.from(outcome.value.stdout).toString();
        const body = JSON.parse(text.slice(text.indexOf('{'))) as { env: Record<string, string>; open: Record<string, string> };
        assert.equal(body.env.TENANT, tenant, text);
        assert.equal(body.open['/data/secret'], tenant === 'a' ? 'opened' : 'No such file or directory', text);
      }
    });

    test('a guest with a start function is never instantiated ahead: its runaway start ends at the deadline and the worker serves on', async () => {
      const start = await load(START as string);
      const counter = await load(COUNTER as string);
      assert.equal(compiled(start).ahead, false);
      for (let i = 0; i < 2; i++) {
        const outcome = await pool.runWasi(start, call({}, null, 'fn/start:a', 300));
        assert.equal(outcome.ok === false && outcome.kind, 'timeout', JSON.stringify(outcome));
        // Made ahead, the start function would spin in the worker with no deadline: this call would never run.
        const next = await pool.runWasi(counter, call({}, null, 'fn/counter:c', 5_000));
        assert.ok(next.ok, JSON.stringify(next));
      }
    });
  });
}

const compiled = (module: CompiledModule): { ahead?: boolean } => module as { ahead?: boolean };
