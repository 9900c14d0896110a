// TypeScript handlers as WebAssembly components on wasmtime, in the worker pool (WasmPool.serveComponent): an
// instance kept per key, traps and runaway guests stopped by epoch without losing the worker, a pool closed while
// a guest is inside a host import, and a response body past the engine's limit.
import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { ComponentArtifact } from '../../core/wasm/component/index.ts';
import { WasmPool } from '../../core/wasm/pool.ts';
import { ModuleCache } from '../../core/wasm/module-cache.ts';
import type { WasmCallOutcome } from '../../core/wasm/types.ts';
import { wasmtimeEngine } from '../../core/wasm/wasmtime/host.ts';
import { waitFor } from '../helpers.ts';
import { PROBE, buildComponents, decoder, jcoMissing, wasmtimeSkip, work } from './wasm-component-fixture.ts';

const skip = jcoMissing();

describe('wasm components (TypeScript handlers)', { skip, timeout: 300_000 }, () => {
  before(() => buildComponents());
  after(() => rmSync(work, { recursive: true, force: true }));

  describe('on wasmtime, in the pool', { skip: wasmtimeSkip }, () => {
    let pool: WasmPool;
    let artifact: ComponentArtifact;
    const destroyed = { count: 0 };
    before(async () => {
      // Loaded the way the wasm tier loads a service's module: a component asked of wasmtime is no longer refused.
      const code = await new ModuleCache(path.join(work, 'pool-cache')).load(PROBE, 1024, 'wasmtime');
      assert.equal(code.kind, 'component');
      artifact = (code as { artifact: ComponentArtifact }).artifact;
      assert.ok(artifact.wasmtime && existsSync(artifact.wasmtime.file), 'a serialized artifact on disk');
      pool = new WasmPool({ threads: 2 });
      (pool as unknown as { piscina: { on(event: 'workerDestroy', listener: () => void): void } }).piscina.on('workerDestroy', () => destroyed.count++);
    });
    after(() => pool?.close());
    const serve = (target: string, deadlineMs = 10_000, instanceKey = 'probe:alice'): Promise<WasmCallOutcome> => {
      const [p, q = ''] = target.split('?') as [string, string?];
      return pool.serveComponent(artifact, { instanceKey, deadlineMs, fresh: false, dataDir: null, request: { method: 'GET', path: p, query: q, headers: [], body: new Uint8Array(0) } });
    };
    const text = (outcome: WasmCallOutcome): string => {
      assert.ok(outcome.ok, outcome.ok ? '' : `${outcome.kind}: ${outcome.message}`);
      return decoder.decode((outcome.value as { body: Uint8Array }).body);
    };

    test('an instance is kept per key across calls, and a trap fails that call only: logged, instance dropped, worker kept', async () => {
      assert.equal(text(await serve('/calls')), '1');
      assert.equal(text(await serve('/calls')), '2');
      const trapped = await serve('/trap');
      assert.equal(trapped.ok, false);
      assert.equal(trapped.ok ? '' : trapped.kind, 'trap', trapped.ok ? '' : trapped.message);
      assert.ok(trapped.logs.some((l) => l.stream === 'stderr' && l.line.includes('trap requested')), JSON.stringify(trapped.logs));
      assert.equal(text(await serve('/calls')), '1', 'the trapped instance was not reused');
      assert.equal(destroyed.count, 0, 'no worker was replaced');
    });

    test('a runaway component traps at its deadline by epoch; its worker lives on and serves the next call', async () => {
      const before = destroyed.count;
      const started = performance.now();
      const outcome = await serve('/loop', 300, 'probe:runaway');
      const stoppedAfter = performance.now() - started;
      assert.equal(outcome.ok, false);
      assert.equal(outcome.ok ? '' : outcome.kind, 'timeout');
      assert.match(outcome.ok ? '' : outcome.message, /interrupted \(wasmtime epoch\), its worker lives on/);
      console.log(`# runaway component with a 300 ms deadline answered after ${stoppedAfter.toFixed(1)} ms`);
      assert.equal(text(await serve('/calls', 10_000, 'probe:runaway')), '1');
      assert.equal(destroyed.count, before, 'stopped without replacing a worker');
      // Nothing runs now: the epoch ticker is told so (it sleeps instead of waking every millisecond).
      const cells = new Int32Array(wasmtimeEngine().shared!.ticker);
      assert.equal(Atomics.load(cells, 1), 0, 'guests counted as running after every call ended');
    });

    test('closing the pool while a guest is inside a host import lets the call end at its deadline; the process lives', async () => {
      // Terminating a worker inside one of our host functions (koffi callbacks) crashed the whole process
      // (SIGSEGV or `free(): invalid pointer`): close() waits for wasmtime calls instead, which stop at their deadline.
      const own = new WasmPool({ threads: 1 });
      const request = (p: string) => ({ method: 'GET', path: p, query: '', headers: [] as [string, string][], body: new Uint8Array(0) });
      assert.ok((await own.serveComponent(artifact, { instanceKey: 'clock', deadlineMs: 10_000, fresh: false, dataDir: null, request: request('/calls') })).ok);
      const spinning = own.serveComponent(artifact, { instanceKey: 'clock', deadlineMs: 1_500, fresh: false, dataDir: null, request: request('/clock-loop') });
      const cells = new Int32Array(wasmtimeEngine().shared!.ticker);
      await waitFor(() => Atomics.load(cells, 1) > 0, 'the guest to be running', 10_000);
      await own.close();
      const outcome = await spinning;
      assert.equal(outcome.ok ? '' : outcome.kind, 'timeout', outcome.ok ? 'it finished' : outcome.message);
      assert.match(outcome.ok ? '' : outcome.message, /interrupted \(wasmtime epoch\)/);
    });

    test('a response body past the engine\'s limit fails as output-too-large, and the host lives on', async () => {
      assert.equal(text(await serve('/big?mb=1')).length, 1024 * 1024);
      const big = await serve('/big?mb=8', 30_000);
      assert.equal(big.ok ? '' : big.kind, 'output-too-large', big.ok ? '' : big.message);
      assert.equal(text(await serve('/calls', 10_000, 'probe:after-big')), '1');
    });
  });
});
